#include "serve/python_tool.h"

namespace optiq::serve {

using Json = nlohmann::ordered_json;

Json with_python_tool(Json body, bool anthropic, bool& added) {
  added = false;
  if (!body.is_object()) return body;
  if (!body.contains("tools")) body["tools"] = Json::array();
  Json& tools = body["tools"];
  if (!tools.is_array()) return body;
  for (const Json& t : tools) {
    const Json* fn = t.is_object() && t.contains("function") ? &t["function"] : &t;
    if (fn->is_object() && fn->contains("name") && (*fn)["name"] == kPythonToolName) return body;
  }
  const Json schema = {{"type", "object"},
                       {"properties", {{"code", {{"type", "string"}, {"description", "Python 3 source to run"}}}}},
                       {"required", {"code"}}};
  const std::string description =
      "Runs Python 3 code in a sandbox (no network, no files kept, 10 s) and returns what it prints "
      "(stdout and stderr). Use print() to see values.";
  if (anthropic) {
    tools.push_back({{"name", kPythonToolName}, {"description", description}, {"input_schema", schema}});
  } else {
    tools.push_back({{"type", "function"},
                     {"function", {{"name", kPythonToolName}, {"description", description}, {"parameters", schema}}}});
  }
  added = true;
  return body;
}

PythonRun run_python_call(const ToolCall& call, const eval::SandboxLimits& limits) {
  PythonRun run;
  const Json* code = call.arguments.contains("code") ? &call.arguments["code"] : nullptr;
  if (!code || !code->is_string()) {
    run.output = "error: the python tool takes {\"code\": \"<Python source>\"}";
    run.exit_code = -1;
    return run;
  }
  run.code = code->get<std::string>();
  const eval::SandboxResult r = eval::run_python_sandboxed(run.code, limits);
  run.output = r.output;
  run.exit_code = r.exit_code;
  if (r.timed_out) run.output += "\n(stopped: the time limit of " + std::to_string(static_cast<int>(limits.wall_seconds)) + " s passed)";
  else if (r.exit_code != 0) run.output += "\n(exit code " + std::to_string(r.exit_code) + ")";
  return run;
}

}  // namespace optiq::serve
