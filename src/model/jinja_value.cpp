#include "model/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <vector>

#include "model/unicode.h"

namespace optiq::jinja {

Value Value::list(std::vector<Value> items, bool tuple) {
  auto d = std::make_shared<ListData>();
  d->items = std::move(items);
  d->tuple = tuple;
  return Value(Storage(std::shared_ptr<const ListData>(std::move(d))));
}

Value Value::dict(std::vector<std::pair<Value, Value>> items) {
  auto d = std::make_shared<DictData>();
  d->items = std::move(items);
  return Value(Storage(std::shared_ptr<const DictData>(std::move(d))));
}

Value Value::callable(std::string name, std::function<Value(CallArgs&)> fn) {
  return Value(Storage(std::shared_ptr<const Callable>(
      std::make_shared<Callable>(Callable{std::move(name), std::move(fn)}))));
}

namespace {
thread_local NamespaceScope* g_namespace_scope = nullptr;  // innermost live scope
thread_local std::vector<std::weak_ptr<NamespaceData>>* g_namespace_list = nullptr;  // its made_
}  // namespace

NamespaceScope::NamespaceScope() : outer_(g_namespace_scope) {
  g_namespace_scope = this;
  g_namespace_list = &made_;
}

NamespaceScope::~NamespaceScope() {
  for (const auto& weak : made_)
    if (auto ns = weak.lock()) ns->attrs.clear();
  g_namespace_scope = outer_;
  g_namespace_list = outer_ ? &outer_->made_ : nullptr;
}

Value Value::make_namespace() {
  auto ns = std::make_shared<NamespaceData>();
  if (g_namespace_list) g_namespace_list->push_back(ns);
  return Value(Storage(std::move(ns)));
}

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return none();
    case nlohmann::json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::json::value_t::number_unsigned: {
      const uint64_t u = j.get<uint64_t>();
      if (u <= static_cast<uint64_t>(INT64_MAX)) return Value(static_cast<int64_t>(u));
      return Value(static_cast<double>(u));
    }
    case nlohmann::json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::json::value_t::array: {
      std::vector<Value> items;
      for (const auto& x : j) items.push_back(from_json(x));
      return list(std::move(items));
    }
    case nlohmann::json::value_t::object: {
      std::vector<std::pair<Value, Value>> items;
      for (const auto& [k, x] : j.items()) items.emplace_back(Value(k), from_json(x));
      return dict(std::move(items));
    }
    default: return none();
  }
}

int64_t Value::as_int() const {
  if (type() == Type::Bool) return as_bool() ? 1 : 0;
  return std::get<int64_t>(v_);
}

double Value::as_double() const {
  if (type() == Type::Float) return std::get<double>(v_);
  return static_cast<double>(as_int());
}

void Value::require_defined() const {
  if (is_undefined()) throw Error(0, undefined_message());
}

bool Value::truthy() const {
  switch (type()) {
    case Type::Undefined:
    case Type::None: return false;
    case Type::Bool: return as_bool();
    case Type::Int: return as_int() != 0;
    case Type::Float: return as_double() != 0.0;
    case Type::String: return !str_ref().empty();
    case Type::List: return !list_ref().items.empty();
    case Type::Dict: return !dict_ref().items.empty();
    default: return true;
  }
}

std::string Value::type_name() const {
  switch (type()) {
    case Type::Undefined: return "Undefined";
    case Type::None: return "NoneType";
    case Type::Bool: return "bool";
    case Type::Int: return "int";
    case Type::Float: return "float";
    case Type::String: return "str";
    case Type::List: return list_ref().tuple ? "tuple" : "list";
    case Type::Dict: return "dict";
    case Type::Callable: return "function";
    case Type::Namespace: return "Namespace";
  }
  return "object";
}

namespace {

void append_hex(std::string& out, const char* prefix, unsigned v, int digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%s%0*x", prefix, digits, v);
  out += buf;
}

std::string repr_string(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const char quote = has_single && s.find('"') == std::string::npos ? '"' : '\'';
  std::string out(1, quote);
  for (char32_t c : decode_utf8(s)) {
    if (c == '\\') out += "\\\\";
    else if (c == static_cast<char32_t>(quote)) out += std::string("\\") + quote;
    else if (c == '\n') out += "\\n";
    else if (c == '\r') out += "\\r";
    else if (c == '\t') out += "\\t";
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) append_hex(out, "\\x", c, 2);
    else if (c >= 0xd800 && c < 0xe000) append_hex(out, "\\u", c, 4);
    else append_utf8(out, c);
  }
  return out + quote;
}

}  // namespace

std::string Value::str() const {
  switch (type()) {
    case Type::Undefined: return "";
    case Type::String: return str_ref();
    default: return repr();
  }
}

// Containers being printed or serialized, innermost last. Templates can build a container that
// holds itself (`{% set ns.x = ns %}`); Python prints such a cycle as "[...]" / "{...}" and
// json.dumps refuses it, and so do repr() and to_python_json here, instead of recursing until
// the stack runs out.
namespace {

thread_local std::vector<const void*> g_open_containers;

class OpenContainer {
 public:
  explicit OpenContainer(const void* c)
      : cycle_(std::find(g_open_containers.begin(), g_open_containers.end(), c) != g_open_containers.end()) {
    if (!cycle_) g_open_containers.push_back(c);
  }
  ~OpenContainer() {
    if (!cycle_) g_open_containers.pop_back();
  }
  OpenContainer(const OpenContainer&) = delete;
  OpenContainer& operator=(const OpenContainer&) = delete;
  bool cycle() const { return cycle_; }

 private:
  bool cycle_;
};

}  // namespace

std::string Value::repr() const {
  switch (type()) {
    case Type::Undefined: return "Undefined";
    case Type::None: return "None";
    case Type::Bool: return as_bool() ? "True" : "False";
    case Type::Int: return std::to_string(as_int());
    case Type::Float: return python_float_repr(as_double());
    case Type::String: return repr_string(str_ref());
    case Type::List: {
      const ListData& l = list_ref();
      const OpenContainer open(&l);
      if (open.cycle()) return l.tuple ? "(...)" : "[...]";
      std::string out = l.tuple ? "(" : "[";
      for (size_t i = 0; i < l.items.size(); ++i) out += (i ? ", " : "") + l.items[i].repr();
      if (l.tuple && l.items.size() == 1) out += ",";
      return out + (l.tuple ? ")" : "]");
    }
    case Type::Dict: {
      const OpenContainer open(&dict_ref());
      if (open.cycle()) return "{...}";
      std::string out = "{";
      bool first = true;
      for (const auto& [k, v] : dict_ref().items) {
        out += (first ? "" : ", ") + k.repr() + ": " + v.repr();
        first = false;
      }
      return out + "}";
    }
    case Type::Callable: return "<function " + callable_ref().name + ">";
    case Type::Namespace: {
      const OpenContainer open(&namespace_ref());
      if (open.cycle()) return "<Namespace {...}>";
      std::string out = "<Namespace {";
      bool first = true;
      for (const auto& [k, v] : namespace_ref().attrs) {
        out += (first ? "" : ", ") + repr_string(k) + ": " + v.repr();
        first = false;
      }
      return out + "}>";
    }
  }
  return "";
}

const Value* DictData::find(const Value& key) const {
  for (const auto& [k, v] : items)
    if (equals(k, key)) return &v;
  return nullptr;
}

const Value* NamespaceData::find(const std::string& name) const {
  for (const auto& [k, v] : attrs)
    if (k == name) return &v;
  return nullptr;
}

void NamespaceData::set(const std::string& name, Value v) {
  for (auto& [k, old] : attrs)
    if (k == name) {
      old = std::move(v);
      return;
    }
  attrs.emplace_back(name, std::move(v));
}

bool equals(const Value& a, const Value& b) {
  using T = Value::Type;
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case T::Undefined:
    case T::None: return true;
    case T::String: return a.str_ref() == b.str_ref();
    case T::List: {
      const ListData &x = a.list_ref(), &y = b.list_ref();
      if (x.tuple != y.tuple || x.items.size() != y.items.size()) return false;
      for (size_t i = 0; i < x.items.size(); ++i)
        if (!equals(x.items[i], y.items[i])) return false;
      return true;
    }
    case T::Dict: {
      const DictData &x = a.dict_ref(), &y = b.dict_ref();
      if (x.items.size() != y.items.size()) return false;
      for (const auto& [k, v] : x.items) {
        const Value* w = y.find(k);
        if (!w || !equals(v, *w)) return false;
      }
      return true;
    }
    case T::Callable: return &a.callable_ref() == &b.callable_ref();
    case T::Namespace: return &a.namespace_ref() == &b.namespace_ref();
    default: return false;
  }
}

bool less(const Value& a, const Value& b) {
  a.require_defined();
  b.require_defined();
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() < b.as_int();
    return a.as_double() < b.as_double();
  }
  if (a.is_string() && b.is_string()) return a.str_ref() < b.str_ref();
  if (a.is_list() && b.is_list() && a.list_ref().tuple == b.list_ref().tuple) {
    const auto &x = a.list_ref().items, &y = b.list_ref().items;
    for (size_t i = 0; i < x.size() && i < y.size(); ++i)
      if (!equals(x[i], y[i])) return less(x[i], y[i]);
    return x.size() < y.size();
  }
  throw Error(0, "'<' not supported between instances of '" + a.type_name() + "' and '" +
                     b.type_name() + "'");
}

std::string python_float_repr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);
  const size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  const int exp = std::stoi(sci.substr(e + 1));
  std::string sign;
  if (mantissa[0] == '-') {
    sign = "-";
    mantissa.erase(0, 1);
  }
  std::string digits;
  for (char c : mantissa)
    if (c != '.') digits += c;
  const int n = static_cast<int>(digits.size());
  if (exp >= -4 && exp < 16) {
    const int point = exp + 1;
    if (point <= 0) return sign + "0." + std::string(-point, '0') + digits;
    if (point >= n) return sign + digits + std::string(point - n, '0') + ".0";
    return sign + digits.substr(0, point) + "." + digits.substr(point);
  }
  std::string out = sign + digits.substr(0, 1);
  if (n > 1) out += "." + digits.substr(1);
  char ebuf[16];
  std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
  return out + ebuf;
}

namespace {

void json_string(std::string& out, const std::string& s, bool ensure_ascii) {
  out += '"';
  for (char32_t c : decode_utf8(s)) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          append_hex(out, "\\u", c, 4);
        } else if (ensure_ascii && c > 0x7e) {
          if (c >= 0x10000) {
            const char32_t v = c - 0x10000;
            append_hex(out, "\\u", 0xd800 + (v >> 10), 4);
            append_hex(out, "\\u", 0xdc00 + (v & 0x3ff), 4);
          } else {
            append_hex(out, "\\u", c, 4);
          }
        } else {
          append_utf8(out, c);
        }
    }
  }
  out += '"';
}

std::string json_float(double d) {
  if (std::isnan(d)) return "NaN";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  return python_float_repr(d);
}

std::string json_key(const Value& k) {
  switch (k.type()) {
    case Value::Type::String: return k.str_ref();
    case Value::Type::Bool: return k.as_bool() ? "true" : "false";
    case Value::Type::Int: return std::to_string(k.as_int());
    case Value::Type::Float: return json_float(k.as_double());
    case Value::Type::None: return "null";
    default:
      throw Error(0, "keys must be str, int, float, bool or None, not " + k.type_name());
  }
}

void dump(std::string& out, const Value& v, const JsonOptions& o, int level) {
  const auto newline = [&](int lvl) {
    out += '\n';
    for (int i = 0; i < lvl; ++i) out += *o.indent;
  };
  switch (v.type()) {
    case Value::Type::None: out += "null"; return;
    case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; return;
    case Value::Type::Int: out += std::to_string(v.as_int()); return;
    case Value::Type::Float: out += json_float(v.as_double()); return;
    case Value::Type::String: json_string(out, v.str_ref(), o.ensure_ascii); return;
    case Value::Type::List: {
      const auto& items = v.list_ref().items;
      const OpenContainer open(&v.list_ref());
      if (open.cycle()) throw Error(0, "Circular reference detected");
      if (items.empty()) {
        out += "[]";
        return;
      }
      out += '[';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.indent) newline(level + 1);
        dump(out, items[i], o, level + 1);
      }
      if (o.indent) newline(level);
      out += ']';
      return;
    }
    case Value::Type::Dict: {
      const OpenContainer open(&v.dict_ref());
      if (open.cycle()) throw Error(0, "Circular reference detected");
      std::vector<std::pair<std::string, const Value*>> items;
      for (const auto& [k, x] : v.dict_ref().items) items.emplace_back(json_key(k), &x);
      if (items.empty()) {
        out += "{}";
        return;
      }
      if (o.sort_keys)
        std::stable_sort(items.begin(), items.end(),
                         [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) out += o.item_separator;
        if (o.indent) newline(level + 1);
        json_string(out, items[i].first, o.ensure_ascii);
        out += o.key_separator;
        dump(out, *items[i].second, o, level + 1);
      }
      if (o.indent) newline(level);
      out += '}';
      return;
    }
    default:
      throw Error(0, "Object of type " + v.type_name() + " is not JSON serializable");
  }
}

}  // namespace

std::string to_python_json(const Value& v, const JsonOptions& options) {
  std::string out;
  dump(out, v, options, 0);
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  if (c >= 0xdc80 && c <= 0xdcff)
    out += static_cast<char>(c - 0xdc00);  // a raw byte decode_utf8 escaped
  else
    unicode::append_utf8(out, static_cast<uint32_t>(c));
}

std::u32string decode_utf8(const std::string& s) {
  std::u32string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    int len = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
    char32_t c = len == 1 ? b0 : len == 2 ? (b0 & 0x1f) : len == 3 ? (b0 & 0x0f) : (b0 & 0x07);
    bool ok = len > 0 && i + len <= s.size();
    for (int k = 1; ok && k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      ok = (b & 0xc0) == 0x80;
      c = (c << 6) | (b & 0x3f);
    }
    // Overlong forms and encoded surrogates are invalid UTF-8 too.
    static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && c >= kMin[len] && c <= 0x10ffff && !(c >= 0xd800 && c < 0xe000);
    if (ok) {
      out += c;
      i += len;
    } else {
      out += b0 < 0x80 ? char32_t{b0} : char32_t{0xdc00u + b0};
      ++i;
    }
  }
  return out;
}

std::string encode_utf8(const std::u32string& s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) append_utf8(out, c);
  return out;
}

}  // namespace optiq::jinja
