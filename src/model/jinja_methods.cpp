// Python's str methods and the read-only dict and list methods, as templates call them
// (`content.split('</think>')[-1]`, `message.get('tool_calls')`). Mutating methods are refused
// the way jinja2's ImmutableSandboxedEnvironment refuses them. Case mapping covers ASCII only.
#include <algorithm>

#include "model/jinja_builtins.h"
#include "model/jinja_lexer.h"

namespace optiq::jinja {
namespace {

using Str = std::u32string;

char32_t ascii_upper(char32_t c) { return c >= 'a' && c <= 'z' ? c - 32 : c; }
char32_t ascii_lower(char32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }
bool ascii_alpha(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }

const std::string& need_str(const Value& v, const std::string& fn, const char* what) {
  if (!v.is_string())
    throw Error(0, fn + "() " + what + " must be str, not " + v.type_name());
  return v.str_ref();
}

Str strip_chars(const Str& s, const Value& chars, bool left, bool right) {
  Str set;
  const bool ws = chars.is_none() || chars.is_undefined();
  if (!ws) set = decode_utf8(need_str(chars, "strip", "arg"));
  auto strip = [&](char32_t c) { return ws ? is_python_space(c) : set.find(c) != Str::npos; };
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && strip(s[b])) ++b;
  if (right)
    while (e > b && strip(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Python's str.split / str.rsplit.
std::vector<Value> split(const Str& s, const Value& sep_v, int64_t maxsplit, bool from_right) {
  std::vector<Str> parts;
  if (sep_v.is_none()) {
    std::vector<std::pair<size_t, size_t>> words;
    for (size_t i = 0; i < s.size();) {
      while (i < s.size() && is_python_space(s[i])) ++i;
      if (i == s.size()) break;
      size_t j = i;
      while (j < s.size() && !is_python_space(s[j])) ++j;
      words.emplace_back(i, j);
      i = j;
    }
    if (maxsplit >= 0 && static_cast<int64_t>(words.size()) > maxsplit + 1) {
      // The unsplit remainder keeps its inner whitespace but loses the outer.
      if (!from_right) {
        const size_t start = words[maxsplit].first;
        words.resize(maxsplit);
        for (auto [b, e] : words) parts.push_back(s.substr(b, e - b));
        parts.push_back(strip_chars(s.substr(start), Value::none(), false, true));
      } else {
        const size_t keep = words.size() - maxsplit;
        const size_t end = words[keep - 1].second;
        parts.push_back(strip_chars(s.substr(0, end), Value::none(), true, false));
        for (size_t k = keep; k < words.size(); ++k)
          parts.push_back(s.substr(words[k].first, words[k].second - words[k].first));
      }
    } else {
      for (auto [b, e] : words) parts.push_back(s.substr(b, e - b));
    }
  } else {
    const Str sep = decode_utf8(need_str(sep_v, "split", "separator"));
    if (sep.empty()) throw Error(0, "empty separator");
    if (!from_right) {
      size_t start = 0;
      for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
        const size_t at = s.find(sep, start);
        if (at == Str::npos) break;
        parts.push_back(s.substr(start, at - start));
        start = at + sep.size();
      }
      parts.push_back(s.substr(start));
    } else {
      size_t end = s.size();
      for (int64_t n = 0; maxsplit < 0 || n < maxsplit; ++n) {
        if (end < sep.size()) break;
        const size_t at = s.rfind(sep, end - sep.size());
        if (at == Str::npos) break;
        parts.push_back(s.substr(at + sep.size(), end - at - sep.size()));
        end = at;
      }
      parts.push_back(s.substr(0, end));
      std::reverse(parts.begin(), parts.end());
    }
  }
  std::vector<Value> out;
  for (const Str& p : parts) out.emplace_back(encode_utf8(p));
  return out;
}

bool affix_match(const Str& s, const Value& affix, bool suffix) {
  std::vector<Value> options = affix.is_list() && affix.list_ref().tuple ? affix.list_ref().items
                                                                         : std::vector<Value>{affix};
  for (const Value& o : options) {
    const Str a = decode_utf8(need_str(o, suffix ? "endswith" : "startswith", "first arg"));
    if (a.size() <= s.size() && (suffix ? s.compare(s.size() - a.size(), a.size(), a) : s.compare(0, a.size(), a)) == 0)
      return true;
  }
  return false;
}

// str.format: {} {0} {name} and {{ }}; no format specs or conversions.
std::string format(const Str& fmt, CallArgs& args) {
  std::string out;
  size_t auto_index = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char32_t c = fmt[i];
    if ((c == '{' || c == '}') && i + 1 < fmt.size() && fmt[i + 1] == c) {
      append_utf8(out, c);
      ++i;
      continue;
    }
    if (c == '}') throw Error(0, "Single '}' encountered in format string");
    if (c != '{') {
      append_utf8(out, c);
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == Str::npos) throw Error(0, "Single '{' encountered in format string");
    const std::string field = encode_utf8(fmt.substr(i + 1, close - i - 1));
    if (field.find_first_of(":!.[") != std::string::npos)
      throw Error(0, "str.format specs and conversions are not supported by optiq: '{" + field + "}'");
    const Value* v = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), ::isdigit)) {
      const size_t k = field.empty() ? auto_index++ : std::stoul(field);
      if (k >= args.positional.size()) throw Error(0, "Replacement index " + std::to_string(k) + " out of range");
      v = &args.positional[k];
    } else {
      for (const auto& [name, x] : args.keyword)
        if (name == field) v = &x;
      if (!v) throw Error(0, "KeyError: '" + field + "'");
    }
    out += v->str();
    i = close;
  }
  return out;
}

Value str_method(const std::string& self, const std::string& name, CallArgs& args) {
  const Str s = decode_utf8(self);
  ArgReader r(args, name);
  auto finish = [&](Value v) {
    r.done();
    return v;
  };
  auto map_chars = [&](auto fn) {
    Str t = s;
    for (char32_t& c : t) c = fn(c);
    return finish(Value(encode_utf8(t)));
  };
  if (name == "startswith" || name == "endswith") {
    const Value affix = r.get("prefix");
    return finish(Value(affix_match(s, affix, name == "endswith")));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    const Value chars = r.get("chars", Value::none());
    return finish(Value(encode_utf8(strip_chars(s, chars, name != "rstrip", name != "lstrip"))));
  }
  if (name == "split" || name == "rsplit") {
    const Value sep = r.get("sep", Value::none());
    const Value maxsplit = r.get("maxsplit", Value(-1));
    if (!maxsplit.is_int()) throw Error(0, "maxsplit must be an integer");
    return finish(Value::list(split(s, sep, maxsplit.as_int(), name == "rsplit")));
  }
  if (name == "upper") return map_chars(ascii_upper);
  if (name == "lower") return map_chars(ascii_lower);
  if (name == "capitalize" || name == "title") {
    Str t = s;
    bool word_start = true;
    for (size_t i = 0; i < t.size(); ++i) {
      const bool cased = ascii_alpha(t[i]);
      t[i] = (name == "title" ? word_start : i == 0) ? ascii_upper(t[i]) : ascii_lower(t[i]);
      word_start = !cased;
    }
    return finish(Value(encode_utf8(t)));
  }
  if (name == "replace") {
    const Str old = decode_utf8(need_str(r.get("old"), name, "arg 1"));
    const Str repl = decode_utf8(need_str(r.get("new"), name, "arg 2"));
    const Value count_v = r.get("count", Value(-1));
    r.done();
    int64_t count = count_v.is_int() ? count_v.as_int() : -1;
    Str out;
    if (old.empty()) {
      for (size_t i = 0; i <= s.size(); ++i) {
        if (count != 0) {
          out += repl;
          --count;
        }
        if (i < s.size()) out += s[i];
      }
      return Value(encode_utf8(out));
    }
    size_t start = 0;
    while (count != 0) {
      const size_t at = s.find(old, start);
      if (at == Str::npos) break;
      out += s.substr(start, at - start) + repl;
      start = at + old.size();
      --count;
    }
    return Value(encode_utf8(out + s.substr(start)));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "count") {
    const Str sub = decode_utf8(need_str(r.get("sub"), name, "arg"));
    r.done();
    if (name == "count") {
      if (sub.empty()) return Value(static_cast<int64_t>(s.size() + 1));
      int64_t n = 0;
      for (size_t at = s.find(sub); at != Str::npos; at = s.find(sub, at + sub.size())) ++n;
      return Value(n);
    }
    const size_t at = name == "rfind" ? s.rfind(sub) : s.find(sub);
    if (at == Str::npos) {
      if (name == "index") throw Error(0, "substring not found");
      return Value(-1);
    }
    return Value(static_cast<int64_t>(at));
  }
  if (name == "join") {
    std::string out;
    const std::vector<Value> items = iterate(r.get("iterable"));
    r.done();
    for (size_t i = 0; i < items.size(); ++i) {
      if (!items[i].is_string())
        throw Error(0, "sequence item " + std::to_string(i) + ": expected str instance, " +
                           items[i].type_name() + " found");
      if (i) out += self;
      out += items[i].str_ref();
    }
    return Value(out);
  }
  if (name == "format") return Value(format(s, args));
  auto all_of = [&](auto pred) { return finish(Value(!s.empty() && std::all_of(s.begin(), s.end(), pred))); };
  if (name == "isdigit") return all_of(ascii_digit);
  if (name == "isalpha") return all_of(ascii_alpha);
  if (name == "isalnum") return all_of([](char32_t c) { return ascii_alpha(c) || ascii_digit(c); });
  if (name == "isspace") return all_of(is_python_space);
  if (name == "islower" || name == "isupper") {
    bool any_cased = false, ok = true;
    for (char32_t c : s) {
      if (!ascii_alpha(c)) continue;
      any_cased = true;
      ok = ok && (name == "islower" ? c >= 'a' : c <= 'Z');
    }
    return finish(Value(any_cased && ok));
  }
  throw Error(0, "str." + name + "() is not supported by optiq");
}

bool is_str_method(const std::string& n) {
  static const char* kNames[] = {"startswith", "endswith", "strip", "lstrip", "rstrip", "split",
                                 "rsplit", "upper", "lower", "capitalize", "title", "replace",
                                 "find", "rfind", "index", "count", "join", "format", "isdigit",
                                 "isalpha", "isalnum", "isspace", "islower", "isupper"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}

Value unsafe(const std::string& type, const std::string& name) {
  return Value::callable(name, [type, name](CallArgs&) -> Value {
    throw Error(0, "access to attribute '" + name + "' of '" + type +
                       "' object is unsafe (templates cannot modify their inputs)");
  });
}

}  // namespace

std::optional<Value> method(const Value& obj, const std::string& name) {
  if (obj.is_string()) {
    if (!is_str_method(name)) return std::nullopt;
    return Value::callable("str." + name, [self = obj.str_ref(), name](CallArgs& a) { return str_method(self, name, a); });
  }
  if (obj.is_dict()) {
    if (name == "items" || name == "keys" || name == "values")
      return Value::callable("dict." + name, [obj, name](CallArgs& a) {
        ArgReader(a, name).done();
        std::vector<Value> out;
        for (const auto& [k, v] : obj.dict_ref().items)
          out.push_back(name == "keys" ? k : name == "values" ? v : Value::list({k, v}, true));
        return Value::list(std::move(out));
      });
    if (name == "get")
      return Value::callable("dict.get", [obj](CallArgs& a) {
        ArgReader r(a, "get");
        const Value key = r.get("key");
        const Value def = r.get("default", Value::none());
        r.done();
        const Value* v = obj.dict_ref().find(key);
        return v ? *v : def;
      });
    if (name == "pop" || name == "popitem" || name == "update" || name == "clear" || name == "setdefault")
      return unsafe("dict", name);
    return std::nullopt;
  }
  if (obj.is_list()) {
    if (name == "index" || name == "count")
      return Value::callable("list." + name, [obj, name](CallArgs& a) {
        ArgReader r(a, name);
        const Value x = r.get("value");
        r.done();
        const auto& items = obj.list_ref().items;
        int64_t n = 0;
        for (size_t i = 0; i < items.size(); ++i)
          if (equals(items[i], x)) {
            if (name == "index") return Value(static_cast<int64_t>(i));
            ++n;
          }
        if (name == "index") throw Error(0, x.repr() + " is not in list");
        return Value(n);
      });
    if (!obj.list_ref().tuple && (name == "append" || name == "extend" || name == "insert" || name == "pop" ||
                                  name == "remove" || name == "reverse" || name == "sort" || name == "clear"))
      return unsafe("list", name);
  }
  return std::nullopt;
}

}  // namespace optiq::jinja
