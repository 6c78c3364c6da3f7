// Lookup, iteration, operators and global functions with jinja2's (and so Python's) rules.
#include "model/jinja_builtins.h"

#include <algorithm>
#include <cmath>

namespace optiq::jinja {

Value ArgReader::get(const char* name, std::optional<Value> def) {
  if (next_ < args_.positional.size()) {
    used_.emplace_back(name);
    return args_.positional[next_++];
  }
  ++next_;
  for (const auto& [k, v] : args_.keyword)
    if (k == name) {
      used_.emplace_back(name);
      return v;
    }
  if (def) return *def;
  throw Error(0, fn_ + "() missing required argument '" + name + "'");
}

std::vector<Value> ArgReader::rest() {
  std::vector<Value> out;
  for (; next_ < args_.positional.size(); ++next_) out.push_back(args_.positional[next_]);
  return out;
}

void ArgReader::done() {
  if (next_ < args_.positional.size())
    throw Error(0, fn_ + "() takes at most " + std::to_string(next_) + " arguments (" +
                       std::to_string(args_.positional.size()) + " given)");
  for (const auto& [k, v] : args_.keyword)
    if (std::find(used_.begin(), used_.end(), k) == used_.end())
      throw Error(0, fn_ + "() got an unexpected keyword argument '" + k + "'");
}

namespace {

// jinja2's object_type_repr in quotes, as its "has no attribute" messages show it. Built by
// appending: GCC 12 warns falsely (-Wrestrict) on "'" + std::string here.
std::string object_desc(const Value& obj) {
  std::string s(1, '\'');
  s.append(obj.is_none() ? "None" : obj.type_name() + " object");
  s.push_back('\'');
  return s;
}

Value no_attribute(const Value& obj, const std::string& name) {
  return Value::undefined(object_desc(obj) + " has no attribute '" + name + "'");
}

// Python index normalisation; nullopt when out of range.
std::optional<size_t> index_of(const Value& key, size_t size) {
  int64_t i = key.as_int();
  if (i < 0) i += static_cast<int64_t>(size);
  if (i < 0 || i >= static_cast<int64_t>(size)) return std::nullopt;
  return static_cast<size_t>(i);
}

void check_overflow(bool overflow) {
  if (overflow) throw Error(0, "integer overflow (optiq uses 64-bit integers)");
}

[[noreturn]] void unsupported_operands(const std::string& op, const Value& a, const Value& b) {
  throw Error(0, "unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'");
}

// Bounds sequences that templates build by repetition or range(), as jinja2's sandbox does
// for range (MAX_RANGE); memory stays bounded for hostile templates.
constexpr int64_t kMaxRange = 100000;
constexpr size_t kMaxRepeatBytes = size_t{64} << 20;

Value repeat(const Value& seq, int64_t n) {
  if (n <= 0) return seq.is_string() ? Value("") : Value::list({}, seq.list_ref().tuple);
  if (seq.is_string()) {
    if (seq.str_ref().size() * static_cast<unsigned __int128>(n) > kMaxRepeatBytes)
      throw Error(0, "string repetition too large");
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str_ref();
    return Value(out);
  }
  const auto& items = seq.list_ref().items;
  if (items.size() * static_cast<unsigned __int128>(n) > kMaxRange) throw Error(0, "list repetition too large");
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), items.begin(), items.end());
  return Value::list(std::move(out), seq.list_ref().tuple);
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (!a.is_number() || !b.is_number()) unsupported_operands(op, a, b);
  const bool ints = a.is_int() && b.is_int();
  if (op == "/") {
    if (b.as_double() == 0) throw Error(0, "division by zero");
    return Value(a.as_double() / b.as_double());
  }
  if (ints) {
    const int64_t x = a.as_int(), y = b.as_int();
    int64_t r = 0;
    if (op == "+" || op == "-" || op == "*") {
      check_overflow(op == "+" ? __builtin_add_overflow(x, y, &r)
                     : op == "-" ? __builtin_sub_overflow(x, y, &r)
                                 : __builtin_mul_overflow(x, y, &r));
      return Value(r);
    }
    if (op == "//" || op == "%") {
      if (y == 0) throw Error(0, "integer division or modulo by zero");
      check_overflow(x == INT64_MIN && y == -1);
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value(op == "//" ? q : m);
    }
    if (op == "**") {
      if (y < 0) return Value(std::pow(static_cast<double>(x), static_cast<double>(y)));
      int64_t result = 1, base = x, e = y;
      while (e > 0) {
        if (e & 1) check_overflow(__builtin_mul_overflow(result, base, &result));
        e >>= 1;
        if (e > 0) check_overflow(__builtin_mul_overflow(base, base, &base));
      }
      return Value(result);
    }
  }
  const double x = a.as_double(), y = b.as_double();
  if (op == "+") return Value(x + y);
  if (op == "-") return Value(x - y);
  if (op == "*") return Value(x * y);
  if (op == "//" || op == "%") {
    if (y == 0) throw Error(0, "float modulo or division by zero");
    double m = std::fmod(x, y);
    if (m != 0 && ((m < 0) != (y < 0))) m += y;
    if (op == "%") return Value(m);
    return Value(std::floor((x - m) / y + 0.5));
  }
  if (x == 0 && y < 0) throw Error(0, "0.0 cannot be raised to a negative power");
  return Value(std::pow(x, y));
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
  obj.require_defined();
  if (auto m = method(obj, name)) return *m;
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_ref().find(Value(name))) return *v;
  } else if (obj.type() == Value::Type::Namespace) {
    if (const Value* v = obj.namespace_ref().find(name)) return *v;
  }
  return no_attribute(obj, name);
}

Value get_item(const Value& obj, const Value& key) {
  obj.require_defined();
  if (obj.is_dict()) {
    if (const Value* v = obj.dict_ref().find(key)) return *v;
  } else if ((obj.is_list() || obj.is_string()) && key.is_int()) {
    if (obj.is_list()) {
      if (auto i = index_of(key, obj.list_ref().items.size())) return obj.list_ref().items[*i];
    } else {
      const std::u32string s = decode_utf8(obj.str_ref());
      if (auto i = index_of(key, s.size())) return Value(encode_utf8(s.substr(*i, 1)));
    }
    return Value::undefined(object_desc(obj) + " has no element " + key.repr());
  }
  if (key.is_string()) return get_attr(obj, key.str_ref());
  return Value::undefined(object_desc(obj) + " has no element " + key.repr());
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step_v) {
  obj.require_defined();
  for (const Value* p : {&start, &stop, &step_v})
    if (!p->is_none() && !p->is_int())
      throw Error(0, "slice indices must be integers or None");
  const int64_t step = step_v.is_none() ? 1 : step_v.as_int();
  if (step == 0) throw Error(0, "slice step cannot be zero");
  std::u32string chars;
  const std::vector<Value>* items = nullptr;
  if (obj.is_string()) chars = decode_utf8(obj.str_ref());
  else if (obj.is_list()) items = &obj.list_ref().items;
  else throw Error(0, "'" + obj.type_name() + "' object is not subscriptable");
  const int64_t n = static_cast<int64_t>(items ? items->size() : chars.size());
  // CPython's PySlice_AdjustIndices.
  auto adjust = [&](const Value& v, int64_t def) {
    if (v.is_none()) return def;
    int64_t i = v.as_int();
    if (i < 0) {
      i += n;
      if (i < 0) i = step < 0 ? -1 : 0;
    } else if (i >= n) {
      i = step < 0 ? n - 1 : n;
    }
    return i;
  };
  const int64_t lo = adjust(start, step < 0 ? n - 1 : 0);
  const int64_t hi = adjust(stop, step < 0 ? -1 : n);
  std::vector<Value> out_items;
  std::u32string out_chars;
  for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
    if (items) out_items.push_back((*items)[i]);
    else out_chars += chars[i];
  }
  if (items) return Value::list(std::move(out_items), obj.list_ref().tuple);
  return Value(encode_utf8(out_chars));
}

std::vector<Value> iterate(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return {};
    case Value::Type::List: return v.list_ref().items;
    case Value::Type::Dict: {
      std::vector<Value> keys;
      for (const auto& [k, x] : v.dict_ref().items) keys.push_back(k);
      return keys;
    }
    case Value::Type::String: {
      std::vector<Value> chars;
      std::string one;
      for (char32_t c : decode_utf8(v.str_ref())) {
        one.clear();
        append_utf8(one, c);
        chars.emplace_back(one);
      }
      return chars;
    }
    default: throw Error(0, "'" + v.type_name() + "' object is not iterable");
  }
}

size_t length(const Value& v) {
  switch (v.type()) {
    case Value::Type::Undefined: return 0;
    case Value::Type::String: return decode_utf8(v.str_ref()).size();
    case Value::Type::List: return v.list_ref().items.size();
    case Value::Type::Dict: return v.dict_ref().items.size();
    case Value::Type::Namespace: return v.namespace_ref().attrs.size();
    default: throw Error(0, "object of type '" + v.type_name() + "' has no len()");
  }
}

Value call(const Value& f, CallArgs& args) {
  f.require_defined();
  if (f.type() != Value::Type::Callable) throw Error(0, "'" + f.type_name() + "' object is not callable");
  return f.callable_ref().fn(args);
}

bool contains(const Value& container, const Value& item) {
  switch (container.type()) {
    case Value::Type::Undefined: return false;
    case Value::Type::String:
      if (!item.is_string())
        throw Error(0, "'in <string>' requires string as left operand, not " + item.type_name());
      return container.str_ref().find(item.str_ref()) != std::string::npos;
    case Value::Type::List:
      return std::any_of(container.list_ref().items.begin(), container.list_ref().items.end(),
                         [&](const Value& x) { return equals(x, item); });
    case Value::Type::Dict: return container.dict_ref().find(item) != nullptr;
    default: throw Error(0, "argument of type '" + container.type_name() + "' is not iterable");
  }
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value(a.str() + b.str());
  a.require_defined();
  b.require_defined();
  if (op == "+") {
    if (a.is_string() || b.is_string()) {
      if (a.is_string() && b.is_string()) return Value(a.str_ref() + b.str_ref());
      if (a.is_string())
        throw Error(0, "can only concatenate str (not \"" + b.type_name() + "\") to str");
      unsupported_operands(op, a, b);
    }
    if (a.is_list() && b.is_list() && a.list_ref().tuple == b.list_ref().tuple) {
      std::vector<Value> items = a.list_ref().items;
      items.insert(items.end(), b.list_ref().items.begin(), b.list_ref().items.end());
      return Value::list(std::move(items), a.list_ref().tuple);
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && b.is_int()) return repeat(a, b.as_int());
    if ((b.is_string() || b.is_list()) && a.is_int()) return repeat(b, a.as_int());
  }
  if (op == "%" && a.is_string())
    throw Error(0, "printf-style '%' string formatting is not supported by optiq");
  return arithmetic(op, a, b);
}

void add_globals(std::unordered_map<std::string, Value>& scope) {
  scope["range"] = Value::callable("range", [](CallArgs& a) {
    if (!a.keyword.empty()) throw Error(0, "range() takes no keyword arguments");
    if (a.positional.empty() || a.positional.size() > 3)
      throw Error(0, "range expected 1 to 3 arguments, got " + std::to_string(a.positional.size()));
    for (const Value& v : a.positional)
      if (!v.is_int()) throw Error(0, "'" + v.type_name() + "' object cannot be interpreted as an integer");
    const bool one = a.positional.size() == 1;
    const int64_t start = one ? 0 : a.positional[0].as_int();
    const int64_t stop = one ? a.positional[0].as_int() : a.positional[1].as_int();
    const int64_t step = a.positional.size() == 3 ? a.positional[2].as_int() : 1;
    if (step == 0) throw Error(0, "range() arg 3 must not be zero");
    const long double count = step > 0 ? (static_cast<long double>(stop) - start) / step
                                        : (static_cast<long double>(start) - stop) / -step;
    if (count > kMaxRange)
      throw Error(0, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
    std::vector<Value> out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.emplace_back(i);
    return Value::list(std::move(out));
  });
  scope["dict"] = Value::callable("dict", [](CallArgs& a) {
    if (!a.positional.empty()) throw Error(0, "dict() with positional arguments is not supported by optiq");
    std::vector<std::pair<Value, Value>> items;
    for (const auto& [k, v] : a.keyword) items.emplace_back(Value(k), v);
    return Value::dict(std::move(items));
  });
  scope["namespace"] = Value::callable("namespace", [](CallArgs& a) {
    Value ns = Value::make_namespace();
    if (a.positional.size() > 1) throw Error(0, "namespace() takes at most one positional argument");
    if (!a.positional.empty()) {
      if (!a.positional[0].is_dict()) throw Error(0, "namespace() positional argument must be a mapping");
      for (const auto& [k, v] : a.positional[0].dict_ref().items) ns.namespace_ref().set(k.str(), v);
    }
    for (const auto& [k, v] : a.keyword) ns.namespace_ref().set(k, v);
    return ns;
  });
  for (const char* name : {"lipsum", "cycler", "joiner"})
    scope[name] = Value::callable(name, [name = std::string(name)](CallArgs&) -> Value {
      throw Error(0, "the global '" + name + "' is not supported by optiq");
    });
}

}  // namespace optiq::jinja
