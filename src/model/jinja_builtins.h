// jinja2's runtime library as optiq's interpreter uses it: attribute and item lookup (with
// jinja2's getattr/getitem fallbacks and Python's str/dict/list methods), iteration, operators,
// calls, filters, tests and the global functions. Internal to the interpreter.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/jinja_value.h"

namespace optiq::jinja {

// Python-style argument binding for builtins: positional in order, then by keyword.
class ArgReader {
 public:
  ArgReader(CallArgs& args, std::string function) : args_(args), fn_(std::move(function)) {}
  // The next parameter `name`; `def` when neither given positionally nor by keyword.
  Value get(const char* name, std::optional<Value> def = std::nullopt);
  std::vector<Value> rest();  // the remaining positional arguments (*args)
  void done();                // throws on anything not consumed

 private:
  CallArgs& args_;
  std::string fn_;
  size_t next_ = 0;
  std::vector<std::string> used_;
};

Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// Python's iter(): list items, dict keys, string characters; undefined is empty.
std::vector<Value> iterate(const Value& v);
Value call(const Value& f, CallArgs& args);
Value binary_op(const std::string& op, const Value& a, const Value& b);
bool contains(const Value& container, const Value& item);  // Python's `in`
Value apply_filter(const std::string& name, const Value& v, CallArgs& args);
bool apply_test(const std::string& name, const Value& v, CallArgs& args);
// range, dict, namespace, and names jinja2 has that optiq refuses with a clear message.
void add_globals(std::unordered_map<std::string, Value>& scope);
// Python str methods and the read-only dict/list methods, bound to `obj`; nullopt if none.
std::optional<Value> method(const Value& obj, const std::string& name);

// Python's len(); throws for types without one.
size_t length(const Value& v);

}  // namespace optiq::jinja
