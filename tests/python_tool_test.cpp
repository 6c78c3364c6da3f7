// optiq serve --python-tool: the built-in tool added to a request's tools, and one call run in
// the sandbox (the oracle test oracle_serve_tools runs the whole loop through the SDKs).
#include <gtest/gtest.h>

#include "serve/python_tool.h"

namespace optiq::serve {
namespace {

using Json = nlohmann::ordered_json;

TEST(PythonTool, AddedBesideTheRequestsToolsInEachApisShape) {
  bool added = false;
  Json openai = with_python_tool(Json::parse(R"({"messages": [], "tools": [{"type": "function", "function": {"name": "add"}}]})"),
                                 /*anthropic=*/false, added);
  EXPECT_TRUE(added);
  ASSERT_EQ(openai["tools"].size(), 2u);
  EXPECT_EQ(openai["tools"][1]["function"]["name"], kPythonToolName);
  EXPECT_EQ(openai["tools"][1]["function"]["parameters"]["required"][0], "code");
  const Json anthropic = with_python_tool(Json::parse(R"({"messages": []})"), /*anthropic=*/true, added);
  EXPECT_TRUE(added);
  EXPECT_EQ(anthropic["tools"][0]["name"], kPythonToolName);
  EXPECT_TRUE(anthropic["tools"][0].contains("input_schema"));
  // The client's own "python" is the client's: nothing is added, and the server runs nothing.
  with_python_tool(Json::parse(R"({"tools": [{"name": "python", "input_schema": {}}]})"), true, added);
  EXPECT_FALSE(added);
  // Malformed tools are left for the parser to refuse.
  const Json bad = with_python_tool(Json::parse(R"({"tools": 3})"), false, added);
  EXPECT_FALSE(added);
  EXPECT_EQ(bad["tools"], 3);
}

TEST(PythonTool, RunsACallAndReportsHowItEnded) {
  eval::SandboxLimits limits;
  limits.wall_seconds = 5;
  const PythonRun ok = run_python_call({kPythonToolName, {{"code", "print(6 * 7)"}}}, limits);
  EXPECT_EQ(ok.output, "42\n");
  EXPECT_EQ(ok.exit_code, 0);
  const PythonRun failed = run_python_call({kPythonToolName, {{"code", "raise SystemExit(3)"}}}, limits);
  EXPECT_EQ(failed.exit_code, 3);
  EXPECT_NE(failed.output.find("(exit code 3)"), std::string::npos);
  const PythonRun no_code = run_python_call({kPythonToolName, {{"source", "1"}}}, limits);
  EXPECT_NE(no_code.output.find("takes {\"code\""), std::string::npos);
}

}  // namespace
}  // namespace optiq::serve
