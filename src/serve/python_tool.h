// optiq serve --python-tool: a built-in "python" tool that the server runs itself. Every chat
// request gets it beside its own tools; when the model calls it, the server runs the code in
// the sandbox `optiq eval` runs HumanEval in (src/eval/sandbox.h: no network, no writes outside
// a scratch folder, CPU, memory, process and time limits), adds the call and its output to the
// conversation as a tool result and generates again, until the model answers without calling it
// (the calls of at most kMaxPythonRounds replies per request are run).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "eval/sandbox.h"
#include "serve/model_output.h"

namespace optiq::serve {

inline constexpr const char* kPythonToolName = "python";
inline constexpr int kMaxPythonRounds = 3;  // times a request's python calls are run

// The request body with the python tool added to its tools (OpenAI's function form, or
// Anthropic's with input_schema); unchanged when the body already has a tool of that name (the
// client's own, which the server then leaves to the client) or malformed tools (the parser
// answers those). `added`: whether it was added.
nlohmann::ordered_json with_python_tool(nlohmann::ordered_json body, bool anthropic, bool& added);

struct PythonRun {
  std::string code;
  std::string output;  // what the model reads back: stdout and stderr, then how the run ended
  int exit_code = 0;
};

// Runs a python call ({"code": "..."}); a call without a string "code" gets an error output.
PythonRun run_python_call(const ToolCall& call, const eval::SandboxLimits& limits);

}  // namespace optiq::serve
