// BFCL's AST rules for the simple category (see bfcl.h).
#include <algorithm>

#include "eval/bfcl.h"

namespace optiq::eval::bfcl {
namespace {

// BFCL's standardize_string: drop " ,./-_*^", lower-case, ' -> ".
std::string standardize(const std::string& s) {
  std::string out;
  for (const char c : s) {
    if (c == ' ' || c == ',' || c == '.' || c == '/' || c == '-' || c == '_' || c == '*' || c == '^') continue;
    const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out += l == '\'' ? '"' : l;
  }
  return out;
}

ojson standardized(const ojson& v) {
  if (v.is_string()) return standardize(v.get<std::string>());
  if (v.is_array()) {
    ojson out = ojson::array();
    for (const ojson& x : v) out.push_back(standardized(x));
    return out;
  }
  return v;
}

// Python's `a == b` for the values JSON can hold: numbers by value (but bools are not numbers
// here, as BFCL's type check has already required the exact type), lists element-wise.
bool py_equal(const ojson& a, const ojson& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!py_equal(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object() && b.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it)
      if (!b.contains(it.key()) || !py_equal(it.value(), b[it.key()])) return false;
    return true;
  }
  return a == b;
}

bool contains(const ojson& list, const ojson& v) {
  return std::any_of(list.begin(), list.end(), [&](const ojson& x) { return py_equal(x, v); });
}

// Python type of a JSON value under BFCL's mapping.
bool has_type(const ojson& v, const std::string& type) {
  if (type == "integer") return v.is_number_integer();
  if (type == "float") return v.is_number_float();
  if (type == "string" || type == "any") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "array" || type == "tuple") return v.is_array();
  if (type == "dict") return v.is_object();
  return true;
}

CheckResult fail(std::string why) { return {false, std::move(why)}; }

// dict_checker: some allowed dict accepts every key of the value, and every key it lacks may be
// left out ("" allowed).
bool dict_matches(const ojson& value, const ojson& allowed) {
  for (const ojson& option : allowed) {
    if (!option.is_object()) continue;
    bool ok = true;
    for (auto it = value.begin(); ok && it != value.end(); ++it) {
      if (!option.contains(it.key())) {
        ok = false;
        break;
      }
      ojson choices = ojson::array();
      for (const ojson& c : option[it.key()]) choices.push_back(standardized(c));
      ok = contains(choices, standardized(it.value()));
    }
    for (auto it = option.begin(); ok && it != option.end(); ++it)
      if (!value.contains(it.key()) && !contains(it.value(), "")) ok = false;
    if (ok) return true;
  }
  return false;
}

}  // namespace

CheckResult check_simple(const ojson& function, const std::vector<Call>& calls, const ojson& possible_answer) {
  if (calls.size() != 1) return fail("expected one call, got " + std::to_string(calls.size()));
  const std::string name = function.at("name").get<std::string>();
  std::string underscored = name;
  std::replace(underscored.begin(), underscored.end(), '.', '_');
  const Call& call = calls[0];
  if (call.name != name && call.name != underscored) return fail("wrong function name: " + call.name + ", expected " + name);
  if (!possible_answer.is_object() || possible_answer.empty()) return fail("the possible answer is not {name: {...}}");
  const ojson& answer = possible_answer.begin().value();
  const ojson& params = function.at("parameters");
  const ojson& props = params.contains("properties") ? params["properties"] : ojson::object();
  if (params.contains("required"))
    for (const ojson& r : params["required"])
      if (!call.arguments.contains(r.get<std::string>())) return fail("missing required parameter: " + r.get<std::string>());
  for (auto it = call.arguments.begin(); it != call.arguments.end(); ++it) {
    const std::string& param = it.key();
    if (!props.contains(param) || !answer.contains(param)) return fail("unexpected parameter: " + param);
    const std::string type = props[param].value("type", "any");
    ojson value = it.value();
    if (type == "float" && value.is_number_integer()) value = value.get<double>();
    if (!has_type(value, type)) return fail("parameter " + param + ": " + value.dump() + " is not of type " + type);
    if ((type == "array" || type == "tuple") && props[param].contains("items")) {
      const std::string item_type = props[param]["items"].value("type", "any");
      for (const ojson& item : value)
        if (!has_type(item, item_type))
          return fail("parameter " + param + ": item " + item.dump() + " is not of type " + item_type);
    }
    const ojson& allowed = answer[param];
    const bool list_of_dicts = (type == "array" || type == "tuple") && props[param].contains("items") &&
                               props[param]["items"].value("type", "") == "dict";
    if (list_of_dicts) {
      // list_dict_checker: some allowed list of the same length whose dicts each accept the
      // value's dict at the same index.
      bool ok = false;
      for (const ojson& option : allowed) {
        if (!option.is_array() || option.size() != value.size()) continue;
        bool all = true;
        for (size_t i = 0; all && i < value.size(); ++i) all = dict_matches(value[i], ojson::array({option[i]}));
        if (all) {
          ok = true;
          break;
        }
      }
      if (!ok) return fail("parameter " + param + ": " + value.dump() + " is not an allowed list of dicts");
      continue;
    }
    if (type == "dict") {
      if (!dict_matches(value, allowed)) return fail("parameter " + param + ": " + value.dump() + " is not an allowed dict");
      continue;
    }
    if (type == "string" || type == "array" || type == "tuple") {
      ojson choices = ojson::array();
      for (const ojson& c : allowed) choices.push_back(standardized(c));
      if (!contains(choices, standardized(value)))
        return fail("parameter " + param + ": " + value.dump() + " is not among " + allowed.dump());
      continue;
    }
    if (!contains(allowed, value)) return fail("parameter " + param + ": " + value.dump() + " is not among " + allowed.dump());
  }
  for (auto it = answer.begin(); it != answer.end(); ++it)
    if (!call.arguments.contains(it.key()) && !contains(it.value(), ""))
      return fail("optional parameter " + it.key() + " left out, but it has no default among the answers");
  return {true, ""};
}

namespace {
ojson schema_types(ojson s) {
  if (s.is_object()) {
    if (s.contains("type") && s["type"].is_string()) {
      const std::string t = s["type"].get<std::string>();
      if (t == "dict") s["type"] = "object";
      else if (t == "float") s["type"] = "number";
      else if (t == "tuple") s["type"] = "array";
      else if (t == "any") s.erase("type");
    }
    for (auto it = s.begin(); it != s.end(); ++it) it.value() = schema_types(it.value());
  } else if (s.is_array()) {
    for (ojson& x : s) x = schema_types(x);
  }
  return s;
}
}  // namespace

ojson to_openai_tool(const ojson& function) {
  ojson fn = function;
  if (fn.contains("parameters")) fn["parameters"] = schema_types(fn["parameters"]);
  return {{"type", "function"}, {"function", fn}};
}

}  // namespace optiq::eval::bfcl
