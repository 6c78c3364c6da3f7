#include <gtest/gtest.h>

#include "eval/bfcl.h"

namespace optiq::eval::bfcl {
namespace {

const ojson kFunction = ojson::parse(R"({
  "name": "calc.area", "description": "area",
  "parameters": {"type": "dict", "properties": {
     "base": {"type": "integer"}, "height": {"type": "float"},
     "unit": {"type": "string"}, "dims": {"type": "array", "items": {"type": "integer"}},
     "opts": {"type": "dict", "properties": {"exact": {"type": "boolean"}}}},
   "required": ["base", "height"]}})");
const ojson kAnswer = ojson::parse(R"({"calc.area": {
  "base": [10], "height": [5.0], "unit": ["square meters", "m^2", ""], "dims": [[1, 2], ""],
  "opts": [{"exact": [true]}, ""]}})");

CheckResult check_text(const std::string& reply) {
  const ParseResult p = parse_calls(reply);
  if (!p.ok) return {false, "parse: " + p.error};
  return check_simple(kFunction, p.calls, kAnswer);
}

TEST(Bfcl, ParsesJsonInToolCallTags) {
  const ParseResult p = parse_calls("Sure.\n<tool_call>\n{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5}}\n</tool_call>");
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.syntax, "tool_call tags");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "calc.area");
  EXPECT_EQ(p.calls[0].arguments["base"], 10);
}

TEST(Bfcl, ParsesBareJsonAndStringArguments) {
  const ParseResult p = parse_calls(R"([{"name": "f", "arguments": "{\"x\": 1}"}])");
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.syntax, "json");
  EXPECT_EQ(p.calls[0].arguments["x"], 1);
}

TEST(Bfcl, ParsesPythonCallSyntax) {
  const ParseResult p = parse_calls("[calc.area(base=10, height=5.0, unit='m^2', dims=[1, 2], opts={'exact': True})]");
  ASSERT_TRUE(p.ok) << p.error;
  EXPECT_EQ(p.syntax, "python");
  const ojson& a = p.calls[0].arguments;
  EXPECT_TRUE(a["base"].is_number_integer());
  EXPECT_TRUE(a["height"].is_number_float());
  EXPECT_EQ(a["unit"], "m^2");
  EXPECT_EQ(a["dims"], ojson::parse("[1,2]"));
  EXPECT_EQ(a["opts"]["exact"], true);
  EXPECT_EQ(parse_python_literal("(1, 'a', None, -2.5e1)"), ojson::parse(R"([1, "a", null, -25.0])"));
}

TEST(Bfcl, RejectsNonCalls) {
  EXPECT_FALSE(parse_calls("The area is 25 square units.").ok);
  EXPECT_FALSE(parse_calls("calc.area(10, 5)").ok);  // positional arguments
}

TEST(Bfcl, AstRulesAcceptEquivalentCalls) {
  EXPECT_TRUE(check_text("calc.area(base=10, height=5)").valid);  // int accepted for float
  EXPECT_TRUE(check_text(R"({"name": "calc_area", "arguments": {"base": 10, "height": 5.0, "unit": "Square-Meters"}})").valid)
      << check_text(R"({"name": "calc_area", "arguments": {"base": 10, "height": 5.0, "unit": "Square-Meters"}})").error;
  EXPECT_TRUE(check_text("calc.area(base=10, height=5.0, opts={'exact': True})").valid);
}

TEST(Bfcl, AstRulesRejectWrongCalls) {
  EXPECT_NE(check_text("calc.volume(base=10, height=5)").error.find("wrong function name"), std::string::npos);
  EXPECT_NE(check_text("calc.area(base=10)").error.find("missing required"), std::string::npos);
  EXPECT_NE(check_text("calc.area(base=10.0, height=5)").error.find("type integer"), std::string::npos);
  EXPECT_NE(check_text("calc.area(base='10', height=5)").error.find("type integer"), std::string::npos);
  EXPECT_NE(check_text("calc.area(base=11, height=5)").error.find("not among"), std::string::npos);
  EXPECT_NE(check_text("calc.area(base=10, height=5, color='red')").error.find("unexpected parameter"), std::string::npos);
  EXPECT_NE(check_text("calc.area(base=10, height=5, dims=[1, 3])").error.find("not among"), std::string::npos);
  EXPECT_NE(check_text("calc.area(base=10, height=5, opts={'exact': False})").error.find("allowed dict"), std::string::npos);
  EXPECT_NE(check_text("[calc.area(base=10, height=5), calc.area(base=10, height=5)]").error.find("one call"), std::string::npos);
}

TEST(Bfcl, OptionalParameterWithoutDefaultMustBeGiven) {
  const ojson answer = ojson::parse(R"({"calc.area": {"base": [10], "height": [5.0], "unit": ["meters"]}})");
  const ParseResult p = parse_calls("calc.area(base=10, height=5)");
  EXPECT_NE(check_simple(kFunction, p.calls, answer).error.find("optional parameter unit"), std::string::npos);
}

TEST(Bfcl, OpenAiToolUsesJsonSchemaTypes) {
  const ojson tool = to_openai_tool(kFunction);
  EXPECT_EQ(tool["type"], "function");
  EXPECT_EQ(tool["function"]["parameters"]["type"], "object");
  EXPECT_EQ(tool["function"]["parameters"]["properties"]["height"]["type"], "number");
  EXPECT_EQ(tool["function"]["parameters"]["properties"]["opts"]["type"], "object");
}

}  // namespace
}  // namespace optiq::eval::bfcl
