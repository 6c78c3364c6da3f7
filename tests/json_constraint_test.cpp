// Constrained decoding's check: prefixes of valid documents stay Partial, contradictions are
// Invalid as soon as they appear, whole documents are Complete. (oracle_serve_sdks validates
// the server's constrained output with the jsonschema package.)
#include <gtest/gtest.h>

#include <string>

#include "constrain/json_constraint.h"
#include "util/error.h"

namespace optiq {
namespace {

using constrain::JsonConstraint;
using State = JsonConstraint::State;
using Json = nlohmann::ordered_json;

// Every prefix of `doc` is Partial (or Complete where it is already a document), and doc is
// Complete.
void expect_all_prefixes_viable(const JsonConstraint& c, const std::string& doc) {
  for (size_t n = 0; n < doc.size(); ++n)
    EXPECT_NE(c.check(doc.substr(0, n)), State::Invalid) << "prefix '" << doc.substr(0, n) << "' of " << doc;
  EXPECT_EQ(c.check(doc), State::Complete) << doc;
}

TEST(JsonConstraint, ObjectWithRequiredAndTypedProperties) {
  const JsonConstraint c(Json::parse(R"({"type": "object", "properties": {
      "name": {"type": "string"}, "age": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}},
      "ok": {"type": "boolean"}, "score": {"type": ["number", "null"]}}, "required": ["name", "age"]})"));
  expect_all_prefixes_viable(c, R"({"name": "Ada", "age": 36, "tags": ["x", "y\"z"], "ok": true, "score": -1.5e3})");
  expect_all_prefixes_viable(c, R"({"age":1,"name":"","score":null})");
  EXPECT_EQ(c.check(R"({"name": "Ada"})"), State::Invalid);           // age is required
  EXPECT_EQ(c.check(R"({"name": 3)"), State::Invalid);                // not a string
  EXPECT_EQ(c.check(R"({"age": 1.5)"), State::Invalid);               // not an integer
  EXPECT_EQ(c.check(R"({"nick)"), State::Invalid);                    // closed: no such property
  EXPECT_EQ(c.check(R"({"na)"), State::Partial);                      // may become "name"
  EXPECT_EQ(c.check(R"({"name": "a", "a)"), State::Partial);          // may become "age"
  EXPECT_EQ(c.check(R"({"name": "a", "name)"), State::Invalid);       // only "name" starts so, and it is taken
  EXPECT_EQ(c.check(R"({"ag\u)"), State::Invalid);                   // closed keys are matched as written
  EXPECT_EQ(c.check(R"({"name": "a", "name": "b")"), State::Invalid);  // twice
  EXPECT_EQ(c.check(R"({"age": 01)"), State::Invalid);                // JSON has no leading zeros
  EXPECT_EQ(c.check(R"({"name": "a", "age": 1} x)"), State::Invalid);  // text after the document
  EXPECT_EQ(c.check("[1]"), State::Invalid);
  EXPECT_EQ(c.check(R"({"name": "a)" "\n"), State::Invalid);          // raw control character in a string
  EXPECT_TRUE(c.finished(R"({"name": "a", "age": 1})"));
  EXPECT_FALSE(c.finished(R"({"name": "a", "age": 1)"));
}

TEST(JsonConstraint, EnumsConstAnyOfRefsAndLimits) {
  const JsonConstraint c(Json::parse(R"({"$defs": {"unit": {"enum": ["celsius", "fahrenheit"]}},
      "type": "object", "properties": {"unit": {"$ref": "#/$defs/unit"}, "n": {"const": 3},
      "v": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "array", "minItems": 1, "maxItems": 2}]}},
      "additionalProperties": false})"));
  expect_all_prefixes_viable(c, R"({"unit": "celsius", "n": 3, "v": "abc"})");
  expect_all_prefixes_viable(c, R"({"v": [1, {"a": [true]}]})");
  EXPECT_EQ(c.check(R"({"unit": "kel)"), State::Invalid);
  EXPECT_EQ(c.check(R"({"n": 4)"), State::Invalid);
  EXPECT_EQ(c.check(R"({"v": "abcd)"), State::Invalid);  // maxLength 3
  EXPECT_EQ(c.check(R"({"v": [])"), State::Invalid);      // minItems 1
  EXPECT_EQ(c.check(R"({"v": [1, 2, 3)"), State::Invalid);  // maxItems 2
  EXPECT_THROW(JsonConstraint(Json::parse(R"({"$ref": "#/$defs/none"})")), InputError);
  EXPECT_THROW(JsonConstraint(Json::parse(R"({"properties": {"a": {"items": {"$ref": "#/definitions/x"}}}})")), InputError);
  EXPECT_THROW(JsonConstraint(Json::parse(R"({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"})")), InputError);
  // Recursion through the schema alone reads nothing and must end: it fails, it does not hang.
  const JsonConstraint loop(Json::parse(R"({"anyOf": [{"$ref": "#"}]})"));
  EXPECT_EQ(loop.check("1"), State::Invalid);
  const JsonConstraint tree(Json::parse(R"({"type": "array", "items": {"$ref": "#"}})"));  // arrays of arrays
  EXPECT_EQ(tree.check("[[], [[]]]"), State::Complete);
  EXPECT_EQ(tree.check("[1]"), State::Invalid);
  EXPECT_THROW(JsonConstraint(Json::array()), InputError);
}

TEST(JsonConstraint, AnyValueWhitespaceCapPrefixAndSuffix) {
  const JsonConstraint any(Json::object());
  expect_all_prefixes_viable(any, R"([1, "two", {"three": null}, false])");
  EXPECT_EQ(any.check("12"), State::Complete);
  EXPECT_FALSE(any.finished("12"));  // more digits could follow
  EXPECT_EQ(any.check(std::string(JsonConstraint::kMaxWhitespace + 1, ' ')), State::Invalid);
  EXPECT_EQ(any.check("{" + std::string(JsonConstraint::kMaxWhitespace, '\n')), State::Partial);
  Json deep = Json::object();
  for (int i = 0; i <= JsonConstraint::kMaxDepth; ++i) deep = Json{{"a", deep}};
  EXPECT_EQ(any.check(deep.dump()), State::Invalid);

  const JsonConstraint call(Json{{"type", "object"}}, "<tool_call>\n", "\n</tool_call>");
  EXPECT_EQ(call.check("<tool"), State::Partial);
  EXPECT_EQ(call.check("Sure"), State::Invalid);
  EXPECT_EQ(call.check("<tool_call>\n{}"), State::Partial);  // the suffix is still due
  EXPECT_EQ(call.check("<tool_call>\n{}\n</tool"), State::Partial);
  EXPECT_EQ(call.check("<tool_call>\n{}\n</tool_call>"), State::Complete);
  EXPECT_TRUE(call.finished("<tool_call>\n{} </tool_call>"));
  EXPECT_EQ(call.check("<tool_call>\n{}\n</tool_call>x"), State::Invalid);
}

}  // namespace
}  // namespace optiq
