// The dynamic value of optiq's Jinja interpreter, with the Python semantics jinja2 inherits:
// truthiness, == across int/float/bool, ordering, str() and repr() spelling (True, None, 1.0,
// 1e-05), and json.dumps output for the tojson filter. Lists and dicts are immutable once built
// (Hugging Face renders in jinja2's ImmutableSandboxedEnvironment) and shared on copy; only a
// namespace() is mutable, and all copies of it see the change, as in Python.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace optiq::jinja {

// A template error before the interpreter knows the line (line 0); the interpreter fills in
// the line of the expression or statement that raised it.
struct Error : std::runtime_error {
  Error(int line, const std::string& what) : std::runtime_error(what), line(line) {}
  int line;
};

class Value;
struct ListData;
struct DictData;
struct Callable;
struct NamespaceData;

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

// jinja2's default Undefined: prints empty, is falsy and iterates as empty, but raises (with
// this message) on attribute access, arithmetic and ordering.
struct Undefined {
  std::string message;
};

class Value {
 public:
  enum class Type { Undefined, None, Bool, Int, Float, String, List, Dict, Callable, Namespace };

  Value() : v_(Undefined{}) {}
  static Value undefined(std::string message) { return Value(Storage(Undefined{std::move(message)})); }
  static Value none() { return Value(Storage(nullptr)); }
  Value(bool b) : v_(b) {}
  Value(int64_t i) : v_(i) {}
  Value(int i) : v_(int64_t{i}) {}
  Value(double d) : v_(d) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(const char* s) : v_(std::string(s)) {}
  static Value list(std::vector<Value> items, bool tuple = false);
  static Value dict(std::vector<std::pair<Value, Value>> items);
  static Value callable(std::string name, std::function<Value(CallArgs&)> fn);
  static Value make_namespace();  // registered with the innermost NamespaceScope, if any
  static Value from_json(const nlohmann::ordered_json& j);

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_undefined() const { return type() == Type::Undefined; }
  bool is_none() const { return type() == Type::None; }
  bool is_string() const { return type() == Type::String; }
  bool is_list() const { return type() == Type::List; }
  bool is_dict() const { return type() == Type::Dict; }
  // Python's bool is an int: True + 1 == 2.
  bool is_int() const { return type() == Type::Int || type() == Type::Bool; }
  bool is_number() const { return is_int() || type() == Type::Float; }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const;  // Int or Bool
  double as_double() const;  // any number
  const std::string& str_ref() const { return std::get<std::string>(v_); }
  const ListData& list_ref() const { return *std::get<std::shared_ptr<const ListData>>(v_); }
  const DictData& dict_ref() const { return *std::get<std::shared_ptr<const DictData>>(v_); }
  const Callable& callable_ref() const { return *std::get<std::shared_ptr<const Callable>>(v_); }
  NamespaceData& namespace_ref() const { return *std::get<std::shared_ptr<NamespaceData>>(v_); }
  const std::string& undefined_message() const { return std::get<Undefined>(v_).message; }

  bool truthy() const;
  std::string str() const;   // Python str(); "" for undefined
  std::string repr() const;  // Python repr()
  std::string type_name() const;  // as Python names it in messages: 'str', 'dict', 'NoneType'
  // Throws the undefined's message: for the operations on which jinja2's Undefined raises.
  void require_defined() const;

 private:
  using Storage = std::variant<Undefined, std::nullptr_t, bool, int64_t, double, std::string,
                               std::shared_ptr<const ListData>, std::shared_ptr<const DictData>,
                               std::shared_ptr<const Callable>, std::shared_ptr<NamespaceData>>;
  explicit Value(Storage s) : v_(std::move(s)) {}
  Storage v_;
};

struct ListData {
  std::vector<Value> items;
  bool tuple = false;  // prints as (a, b)
};

// Insertion-ordered, as Python dicts and the JSON they come from.
struct DictData {
  std::vector<std::pair<Value, Value>> items;
  const Value* find(const Value& key) const;
};

struct Callable {
  std::string name;
  std::function<Value(CallArgs&)> fn;
};

struct NamespaceData {
  std::vector<std::pair<std::string, Value>> attrs;
  const Value* find(const std::string& name) const;
  void set(const std::string& name, Value v);
};

// Python semantics; ordering throws Error for types Python cannot order.
bool equals(const Value& a, const Value& b);
bool less(const Value& a, const Value& b);

// Python float repr: shortest round-trip digits, "1.0", "1e-05", "1e+16", "inf", "nan".
std::string python_float_repr(double d);

struct JsonOptions {
  std::optional<std::string> indent;  // None: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
  bool ensure_ascii = false;
};
// Exactly what Python's json.dumps writes for the value; throws Error for what it cannot
// serialize (undefined, callables, namespaces).
std::string to_python_json(const Value& v, const JsonOptions& options);

// UTF-8 <-> code points. Invalid bytes map to U+DC80..U+DCFF and back (Python's
// surrogateescape), so string operations never lose or invent bytes.
std::u32string decode_utf8(const std::string& s);
std::string encode_utf8(const std::u32string& s);
void append_utf8(std::string& out, char32_t c);

// Namespaces are the one mutable value, so a template can build a cycle (`{% set ns.me = ns %}`)
// that reference counting never frees. A render holds a NamespaceScope: every namespace made while
// it lives has its attributes cleared when it ends, which breaks such cycles.
class NamespaceScope {
 public:
  NamespaceScope();
  ~NamespaceScope();
  NamespaceScope(const NamespaceScope&) = delete;
  NamespaceScope& operator=(const NamespaceScope&) = delete;

 private:
  std::vector<std::weak_ptr<NamespaceData>> made_;  // namespaces created in this scope
  NamespaceScope* outer_;                           // the scope this one replaced
};

}  // namespace optiq::jinja
