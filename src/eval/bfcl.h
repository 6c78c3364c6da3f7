// BFCL (Berkeley Function-Calling Leaderboard) v3, "simple" category: one function document per
// question, one expected call. The model's reply is parsed into calls (JSON objects
// {"name", "arguments"} inside <tool_call> tags or bare, or Python call syntax
// `name(param=value, ...)`, optionally in [ ]), then checked by BFCL's AST rules
// (bfcl/eval_checker/ast_eval/ast_checker.py, simple_function_checker):
//  - exactly one call, named as the function (dots may appear as underscores);
//  - every required parameter present, no parameter outside the document's properties or the
//    possible answer;
//  - each value of the documented type (Python types: integer -> int, float -> float, an int
//    accepted for a float, string -> str, boolean -> bool, array/tuple -> list with item types,
//    dict -> dict);
//  - each value among the possible answers: strings compared after removing " ,./-_*^",
//    lower-casing and ' -> "; lists element-wise likewise; dicts key by key (lists of dicts
//    dict by dict); numbers by value;
//  - a parameter left out only when its possible answers include "" (optional).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace optiq::eval::bfcl {

using ojson = nlohmann::ordered_json;

struct Call {
  std::string name;  // function name as emitted
  ojson arguments;   // object: parameter -> value (JSON types; Python tuples become arrays)
};

struct ParseResult {
  bool ok = false;
  std::string syntax;       // "tool_call tags", "json", "python" (when ok)
  std::vector<Call> calls;  // the calls, in order
  std::string error;        // why nothing parsed (when !ok)
};

// Parses a model reply into calls.
ParseResult parse_calls(const std::string& reply);

// A Python literal or call list in text, for tests: parses `value` as a Python literal (numbers,
// strings, True/False/None, lists, tuples, dicts). Throws std::invalid_argument when it is not one.
ojson parse_python_literal(const std::string& value);

struct CheckResult {
  bool valid = false;
  std::string error;  // the first rule broken (when !valid)
};

// `function`: the question's function document {"name", "description", "parameters": {"type",
// "properties", "required"}}; `possible_answer`: {"<name>": {"<param>": [allowed values...]}}.
CheckResult check_simple(const ojson& function, const std::vector<Call>& calls, const ojson& possible_answer);

// The document as an OpenAI-style tool for a chat template: {"type": "function", "function":
// {...}} with BFCL's "dict" parameter type written as JSON Schema's "object" and "float" as
// "number", "tuple" as "array".
ojson to_openai_tool(const ojson& function);

}  // namespace optiq::eval::bfcl
