// jinja2's filters and tests, as chat templates use them. `tojson` is Hugging Face's override
// (json.dumps with ensure_ascii=False and the indent/separators/sort_keys it exposes), not
// jinja2's HTML-safe version, because that is the filter chat templates are written against.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "model/jinja_builtins.h"
#include "model/jinja_lexer.h"

namespace optiq::jinja {
namespace {

Value tojson(const Value& v, ArgReader& r) {
  JsonOptions o;
  o.ensure_ascii = r.get("ensure_ascii", Value(false)).truthy();
  const Value indent = r.get("indent", Value::none());
  const Value separators = r.get("separators", Value::none());
  o.sort_keys = r.get("sort_keys", Value(false)).truthy();
  r.done();
  if (indent.is_int()) o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(indent.as_int(), 0, 1024)), ' ');
  else if (indent.is_string()) o.indent = indent.str_ref();
  else if (!indent.is_none()) throw Error(0, "tojson: indent must be an int, a string or None");
  if (o.indent) o.item_separator = ",";
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.list_ref().items.size() != 2 ||
        !separators.list_ref().items[0].is_string() || !separators.list_ref().items[1].is_string())
      throw Error(0, "tojson: separators must be a pair of strings");
    o.item_separator = separators.list_ref().items[0].str_ref();
    o.key_separator = separators.list_ref().items[1].str_ref();
  }
  return Value(to_python_json(v, o));
}

// jinja2's attribute paths: "a.b.0" looks up a, then b, then item 0.
Value lookup_path(const Value& item, const Value& path) {
  if (path.is_int()) return get_item(item, path);
  Value cur = item;
  const std::string p = path.str();
  size_t start = 0;
  while (true) {
    const size_t dot = p.find('.', start);
    const std::string part = p.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit) && part.size() < 18;
    cur = get_item(cur, digits ? Value(static_cast<int64_t>(std::stoll(part))) : Value(part));
    if (dot == std::string::npos) return cur;
    start = dot + 1;
  }
}

// Sort key for sort/unique/min/max/dictsort: strings fold case unless case_sensitive.
Value fold(const Value& v, bool case_sensitive) {
  if (case_sensitive || !v.is_string()) return v;
  std::string s = v.str_ref();
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  return Value(s);
}

std::vector<Value> select(const std::vector<Value>& items, ArgReader& r, bool by_attr, bool keep) {
  const Value attr = by_attr ? r.get("attribute") : Value();
  std::vector<Value> rest = r.rest();
  r.done();
  std::vector<Value> out;
  for (const Value& item : items) {
    const Value subject = by_attr ? lookup_path(item, attr) : item;
    bool ok;
    if (rest.empty()) {
      ok = subject.truthy();
    } else {
      CallArgs test_args;
      test_args.positional.assign(rest.begin() + 1, rest.end());
      ok = apply_test(rest[0].str(), subject, test_args);
    }
    if (ok == keep) out.push_back(item);
  }
  return out;
}

std::string indent_text(const std::string& s_in, ArgReader& r) {
  const Value width = r.get("width", Value(4));
  const bool first = r.get("first", Value(false)).truthy();
  const bool blank = r.get("blank", Value(false)).truthy();
  r.done();
  const std::string pad = width.is_string() ? width.str_ref() : std::string(std::clamp<int64_t>(width.as_int(), 0, 1024), ' ');
  // Python's str.splitlines() boundaries, after jinja2 appends a newline.
  const std::u32string s = decode_utf8(s_in + "\n");
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t c = s[i];
    const bool boundary = c == '\n' || c == '\r' || c == 0x0b || c == 0x0c || (c >= 0x1c && c <= 0x1e) ||
                          c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!boundary) continue;
    lines.push_back(encode_utf8(s.substr(start, i - start)));
    if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
    start = i + 1;
  }
  if (start < s.size()) lines.push_back(encode_utf8(s.substr(start)));
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i) out += "\n";
    if (i && (blank || !lines[i].empty())) out += pad;
    out += lines[i];
  }
  return first ? pad + out : out;
}

Value round_value(const Value& v, ArgReader& r) {
  const Value precision = r.get("precision", Value(0));
  const std::string method = r.get("method", Value("common")).str();
  r.done();
  if (!v.is_number()) throw Error(0, "round: value must be a number");
  const int64_t p = std::clamp<int64_t>(precision.is_int() ? precision.as_int() : 0, -300, 300);
  const double x = v.as_double();
  if (method == "ceil" || method == "floor") {
    const double scale = std::pow(10.0, static_cast<double>(p));
    return Value((method == "ceil" ? std::ceil(x * scale) : std::floor(x * scale)) / scale);
  }
  if (method != "common") throw Error(0, "method must be common, ceil or floor");
  if (v.is_int() && p >= 0) return Value(v.as_int());
  if (p < 0 || !std::isfinite(x)) return Value(std::nearbyint(x / std::pow(10.0, -p)) * std::pow(10.0, -p));
  // printf rounds the exact binary value half-to-even, which is what Python's round() does.
  char buf[512];
  std::snprintf(buf, sizeof buf, "%.*f", static_cast<int>(p), x);
  return Value(std::strtod(buf, nullptr));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

Value to_int(const Value& v, const Value& def) {
  if (v.is_int()) return Value(v.as_int());
  if (v.type() == Value::Type::Float) {
    const double d = v.as_double();
    if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) return def;
    return Value(static_cast<int64_t>(d));
  }
  if (!v.is_string()) return def;
  std::string s = v.str_ref();
  s.erase(std::remove(s.begin(), s.end(), '_'), s.end());
  const char* b = s.c_str();
  char* end = nullptr;
  errno = 0;
  const long long i = std::strtoll(b, &end, 10);
  auto rest_blank = [&](const char* e) { return std::all_of(e, b + s.size(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); }); };
  if (end != b && errno == 0 && rest_blank(end)) return Value(static_cast<int64_t>(i));
  const double d = std::strtod(b, &end);
  if (end != b && rest_blank(end) && std::isfinite(d) && std::fabs(d) < 9.2e18) return Value(static_cast<int64_t>(d));
  return def;
}

Value sorted(std::vector<Value> items, bool reverse, bool case_sensitive, const Value& attr) {
  auto key = [&](const Value& x) { return fold(attr.is_none() ? x : lookup_path(x, attr), case_sensitive); };
  std::stable_sort(items.begin(), items.end(), [&](const Value& a, const Value& b) {
    return reverse ? less(key(b), key(a)) : less(key(a), key(b));
  });
  return Value::list(std::move(items));
}

bool is_unsupported_filter(const std::string& n) {
  static const char* kNames[] = {"batch", "center", "filesizeformat", "forceescape", "format", "groupby",
                                 "pprint", "random", "slice", "striptags", "truncate", "urlencode",
                                 "urlize", "wordwrap", "xmlattr", "wordcount"};
  return std::find(std::begin(kNames), std::end(kNames), n) != std::end(kNames);
}

}  // namespace

Value apply_filter(const std::string& name, const Value& v, CallArgs& args) {
  ArgReader r(args, name);
  auto done = [&](Value out) {
    r.done();
    return out;
  };
  if (name == "tojson") return tojson(v, r);
  if (name == "trim") {
    const Value chars = r.get("chars", Value::none());
    CallArgs strip_args;
    strip_args.positional.push_back(chars);
    r.done();
    return call(*method(Value(v.str()), "strip"), strip_args);
  }
  if (name == "length" || name == "count") return done(Value(static_cast<int64_t>(length(v))));
  if (name == "items") {
    r.done();
    if (v.is_undefined()) return Value::list({});
    if (!v.is_dict()) throw Error(0, "Can only get item pairs from a mapping.");
    CallArgs none;
    return call(*method(v, "items"), none);
  }
  if (name == "join") {
    const Value sep = r.get("d", Value(""));
    const Value attr = r.get("attribute", Value::none());
    r.done();
    std::string out;
    bool first = true;
    for (const Value& x : iterate(v)) {
      if (!first) out += sep.str();
      out += (attr.is_none() ? x : lookup_path(x, attr)).str();
      first = false;
    }
    return Value(out);
  }
  if (name == "upper" || name == "lower" || name == "capitalize" || name == "title") {
    r.done();
    CallArgs none;
    return call(*method(Value(v.str()), name), none);
  }
  if (name == "replace") {
    CallArgs a;
    a.positional = {r.get("old"), r.get("new")};
    const Value count = r.get("count", Value::none());
    if (!count.is_none()) a.positional.push_back(count);
    r.done();
    return call(*method(Value(v.str()), "replace"), a);
  }
  if (name == "default" || name == "d") {
    const Value def = r.get("default_value", Value(""));
    const bool boolean = r.get("boolean", Value(false)).truthy();
    r.done();
    return v.is_undefined() || (boolean && !v.truthy()) ? def : v;
  }
  if (name == "first" || name == "last") {
    r.done();
    std::vector<Value> items = iterate(v);
    if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "map") {
    std::vector<Value> out;
    const bool by_attr = std::any_of(args.keyword.begin(), args.keyword.end(), [](auto& k) { return k.first == "attribute"; });
    if (by_attr) {
      const Value attr = r.get("attribute");
      const std::optional<Value> def = [&]() -> std::optional<Value> {
        for (const auto& [k, x] : args.keyword)
          if (k == "default") return r.get("default");
        return std::nullopt;
      }();
      r.done();
      for (const Value& x : iterate(v)) {
        Value y = lookup_path(x, attr);
        out.push_back(def && y.is_undefined() ? *def : y);
      }
    } else {
      const std::string filter = r.get("filter").str();
      std::vector<Value> rest = r.rest();
      r.done();
      for (const Value& x : iterate(v)) {
        CallArgs fa;
        fa.positional = rest;
        out.push_back(apply_filter(filter, x, fa));
      }
    }
    return Value::list(std::move(out));
  }
  if (name == "select" || name == "reject") return Value::list(select(iterate(v), r, false, name == "select"));
  if (name == "selectattr" || name == "rejectattr")
    return Value::list(select(iterate(v), r, true, name == "selectattr"));
  if (name == "string") return done(Value(v.str()));
  if (name == "list") return done(Value::list(iterate(v)));
  if (name == "int") {
    const Value def = r.get("default", Value(0));
    const Value base = r.get("base", Value(10));
    r.done();
    if (!base.is_int() || base.as_int() != 10) throw Error(0, "int filter: only base 10 is supported by optiq");
    return to_int(v, def);
  }
  if (name == "float") {
    const Value def = r.get("default", Value(0.0));
    r.done();
    if (v.is_number()) return Value(v.as_double());
    if (!v.is_string()) return def;
    char* end = nullptr;
    const std::string s = v.str_ref();
    const double d = std::strtod(s.c_str(), &end);
    return end != s.c_str() && std::all_of(static_cast<const char*>(end), s.c_str() + s.size(), [](char c) { return std::isspace(static_cast<unsigned char>(c)); })
               ? Value(d) : def;
  }
  if (name == "abs") {
    r.done();
    if (!v.is_number()) throw Error(0, "bad operand type for abs(): '" + v.type_name() + "'");
    if (v.is_int()) {
      if (v.as_int() == INT64_MIN) throw Error(0, "integer overflow (optiq uses 64-bit integers)");
      return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
    }
    return Value(std::fabs(v.as_double()));
  }
  if (name == "round") return round_value(v, r);
  if (name == "reverse") {
    r.done();
    if (v.is_string()) {
      std::u32string s = decode_utf8(v.str_ref());
      std::reverse(s.begin(), s.end());
      return Value(encode_utf8(s));
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list(std::move(items));
  }
  if (name == "sort") {
    const bool reverse = r.get("reverse", Value(false)).truthy();
    const bool cs = r.get("case_sensitive", Value(false)).truthy();
    const Value attr = r.get("attribute", Value::none());
    r.done();
    return sorted(iterate(v), reverse, cs, attr);
  }
  if (name == "dictsort") {
    const bool cs = r.get("case_sensitive", Value(false)).truthy();
    const std::string by = r.get("by", Value("key")).str();
    const bool reverse = r.get("reverse", Value(false)).truthy();
    r.done();
    if (!v.is_dict()) throw Error(0, "dictsort: value must be a mapping");
    std::vector<Value> pairs;
    for (const auto& [k, x] : v.dict_ref().items) pairs.push_back(Value::list({k, x}, true));
    return sorted(std::move(pairs), reverse, cs, Value(static_cast<int64_t>(by == "value" ? 1 : 0)));
  }
  if (name == "unique" || name == "min" || name == "max") {
    const bool cs = r.get("case_sensitive", Value(false)).truthy();
    const Value attr = r.get("attribute", Value::none());
    r.done();
    auto key = [&](const Value& x) { return fold(attr.is_none() ? x : lookup_path(x, attr), cs); };
    std::vector<Value> items = iterate(v);
    if (name == "unique") {
      std::vector<Value> out, seen;
      for (const Value& x : items) {
        const Value k = key(x);
        if (std::none_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) {
          seen.push_back(k);
          out.push_back(x);
        }
      }
      return Value::list(std::move(out));
    }
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    Value best = items[0];
    for (const Value& x : items)
      if (name == "min" ? less(key(x), key(best)) : less(key(best), key(x))) best = x;
    return best;
  }
  if (name == "sum") {
    const Value attr = r.get("attribute", Value::none());
    Value total = r.get("start", Value(0));
    r.done();
    for (const Value& x : iterate(v)) total = binary_op("+", total, attr.is_none() ? x : lookup_path(x, attr));
    return total;
  }
  if (name == "safe") return done(v);
  if (name == "escape" || name == "e") return done(Value(html_escape(v.str())));
  if (name == "indent") return Value(indent_text(v.str(), r));
  if (name == "attr") {
    const Value attr = r.get("name");
    r.done();
    return get_attr(v, attr.str());
  }
  if (is_unsupported_filter(name)) throw Error(0, "the filter '" + name + "' is not supported by optiq");
  throw Error(0, "no filter named '" + name + "'");
}

bool apply_test(const std::string& name, const Value& v, CallArgs& args) {
  ArgReader r(args, name);
  auto done = [&](bool b) {
    r.done();
    return b;
  };
  using T = Value::Type;
  if (name == "defined") return done(!v.is_undefined());
  if (name == "undefined") return done(v.is_undefined());
  if (name == "none") return done(v.is_none());
  if (name == "string") return done(v.is_string());
  if (name == "mapping") return done(v.is_dict());
  if (name == "iterable" || name == "sequence")
    return done(v.is_undefined() || v.is_string() || v.is_list() || v.is_dict());
  if (name == "number") return done(v.is_number());
  if (name == "integer") return done(v.type() == T::Int);
  if (name == "float") return done(v.type() == T::Float);
  if (name == "boolean") return done(v.type() == T::Bool);
  if (name == "true") return done(v.type() == T::Bool && v.as_bool());
  if (name == "false") return done(v.type() == T::Bool && !v.as_bool());
  if (name == "callable") return done(v.type() == T::Callable);
  if (name == "escaped") return done(false);
  if (name == "lower" || name == "upper") {
    CallArgs none;
    return done(call(*method(Value(v.str()), name == "lower" ? "islower" : "isupper"), none).truthy());
  }
  if (name == "even" || name == "odd" || name == "divisibleby") {
    const Value n = name == "divisibleby" ? r.get("num") : Value(2);
    r.done();
    if (!v.is_int() || !n.is_int()) throw Error(0, "the '" + name + "' test needs integers");
    if (n.as_int() == 0) throw Error(0, "integer division or modulo by zero");
    const int64_t m = n.as_int() == -1 ? 0 : v.as_int() % n.as_int();
    return name == "odd" ? m != 0 : m == 0;
  }
  static const char* kBinary[] = {"eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "gt",
                                 "greaterthan", ">", "le", "<=", "ge", ">=", "in", "sameas"};
  if (std::find(std::begin(kBinary), std::end(kBinary), name) == std::end(kBinary))
    throw Error(0, "no test named '" + name + "'");
  const Value other = r.get("other");
  r.done();
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, other);
  if (name == "ne" || name == "!=") return !equals(v, other);
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, other);
  if (name == "gt" || name == "greaterthan" || name == ">") return less(other, v);
  if (name == "le" || name == "<=") return less(v, other) || equals(v, other);
  if (name == "ge" || name == ">=") return less(other, v) || equals(v, other);
  if (name == "in") return contains(other, v);
  return v.type() == other.type() && equals(v, other);  // sameas
}

}  // namespace optiq::jinja
