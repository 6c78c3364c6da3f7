// A chat model's output split into reasoning, answer text and tool calls, in each family's
// syntax, whole and while streaming; and conversations with tools reshaped for templates that
// lack them.
#include <gtest/gtest.h>

#include <string>

#include "serve/model_output.h"
#include "serve/tool_prompt.h"

namespace optiq::serve {
namespace {

using Json = nlohmann::ordered_json;

OutputFormat with_tools() {
  OutputFormat f;
  f.tool_names = {"get_weather", "add"};
  return f;
}

TEST(ModelOutput, ToolCallSyntaxOfEveryFamily) {
  const OutputFormat f = with_tools();
  struct Case {
    const char* family;
    std::string text;
  };
  const Case cases[] = {
      {"hermes", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"},
      {"hermes, unclosed", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}"},
      {"phi-4", "<|tool_call|>[{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]<|/tool_call|>"},
      {"mistral", "[TOOL_CALLS] [{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}]"},
      {"deepseek", "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n"
                   "{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"},
      {"llama 3", "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}"},
      {"arguments as a string", "<tool_call>{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}</tool_call>"},
  };
  for (const Case& c : cases) {
    const ModelOutput out = parse_model_output(c.text, f);
    ASSERT_EQ(out.calls.size(), 1u) << c.family;
    EXPECT_EQ(out.calls[0].name, "get_weather") << c.family;
    EXPECT_EQ(out.calls[0].arguments, Json({{"city", "Paris"}})) << c.family;
    EXPECT_EQ(out.content, "") << c.family;
  }
  const ModelOutput two = parse_model_output(
      "I will check.\n<tool_call>{\"name\": \"add\", \"arguments\": {\"a\": 1}}</tool_call>\n"
      "<tool_call>{\"name\": \"get_weather\", \"arguments\": {}}</tool_call>",
      f);
  ASSERT_EQ(two.calls.size(), 2u);
  EXPECT_EQ(two.calls[1].name, "get_weather");
  EXPECT_EQ(two.content, "I will check.");
}

TEST(ModelOutput, NotACallStaysText) {
  const OutputFormat f = with_tools();
  for (const std::string& text : {
           std::string("<tool_call>{\"name\": \"launch\", \"arguments\": {}}</tool_call>"),  // not a tool of the request
           std::string("<tool_call>{\"name\": \"add\", \"arguments\": [1]}</tool_call>"),    // arguments not an object
           std::string("<tool_call>not json</tool_call>"),
           std::string("{\"answer\": 42}"),  // JSON, but no call
       }) {
    const ModelOutput out = parse_model_output(text, f);
    EXPECT_TRUE(out.calls.empty()) << text;
    EXPECT_EQ(out.content, text);
  }
  OutputFormat none;  // tool_choice none, or no tools: never parsed
  const std::string call = "<tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call>";
  EXPECT_EQ(parse_model_output(call, none).content, call);
}

TEST(ModelOutput, Reasoning) {
  OutputFormat f;
  ModelOutput out = parse_model_output("<think>\nLet me see.\n</think>\n\nIt is 4.", f);
  EXPECT_EQ(out.reasoning, "Let me see.");
  EXPECT_EQ(out.content, "It is 4.");
  f.reasoning_open = true;  // DeepSeek R1: the prompt opened <think>
  out = parse_model_output("Hmm, 2+2.</think>4", f);
  EXPECT_EQ(out.reasoning, "Hmm, 2+2.");
  EXPECT_EQ(out.content, "4");
  out = parse_model_output("still thinking", f);  // cut off by max_tokens inside reasoning
  EXPECT_EQ(out.reasoning, "still thinking");
  EXPECT_EQ(out.content, "");
  f.split_reasoning = false;
  EXPECT_EQ(parse_model_output("<think>x</think>y", f).content, "<think>x</think>y");
}

TEST(ModelOutput, StreamingSendsOnlyDecidedText) {
  OutputFormat f = with_tools();
  const std::string full = "<think>Plan.</think>\nChecking now. <tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call>";
  std::string reasoning_sent, content_sent;
  for (size_t n = 0; n <= full.size(); ++n) {
    const StreamableOutput now = streamable_output(full.substr(0, n), f);
    // Each step extends what was sent before: deltas never need taking back.
    ASSERT_EQ(now.reasoning.rfind(reasoning_sent, 0), 0u) << n;
    ASSERT_EQ(now.content.rfind(content_sent, 0), 0u) << n;
    EXPECT_EQ(now.content.find('<'), std::string::npos) << n;  // no piece of a tag or a call
    reasoning_sent = now.reasoning;
    content_sent = now.content;
  }
  const ModelOutput out = parse_model_output(full, f);
  EXPECT_EQ(reasoning_sent, out.reasoning);
  EXPECT_EQ(content_sent, out.content);
  EXPECT_EQ(out.calls.size(), 1u);
  // A bare JSON answer may be a Llama 3 call: held until the end.
  EXPECT_EQ(streamable_output("{\"name\": \"add\"", f).content, "");
  // Without tools or reasoning the text streams as it is.
  OutputFormat plain;
  plain.split_reasoning = false;
  EXPECT_EQ(streamable_output("a <b ", plain).content, "a <b ");
}

TEST(ModelOutput, ForcedCallConstraint) {
  const Json tools = Json::parse(R"([{"type": "function", "function": {"name": "add",
      "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}}},
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])");
  const auto any = forced_tool_call(tools, "");
  using State = constrain::JsonConstraint::State;
  EXPECT_EQ(any->check("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2}}\n</tool_call>"), State::Complete);
  EXPECT_EQ(any->check("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": \"2\""), State::Invalid);
  EXPECT_EQ(any->check("<tool_call>\n{\"name\": \"mul\""), State::Invalid);
  const auto weather = forced_tool_call(tools, "get_weather");
  EXPECT_EQ(weather->check("<tool_call>\n{\"name\": \"add\""), State::Invalid);
  EXPECT_EQ(weather->check("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>"), State::Complete);
  const ModelOutput out = parse_model_output("<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 2}}\n</tool_call>", with_tools());
  ASSERT_EQ(out.calls.size(), 1u);  // what the constraint forces, the parser reads
}

TEST(ToolPrompt, TemplatesWithoutToolsGetThemInTheSystemMessage) {
  const Json tools = Json::parse(R"([{"type": "function", "function": {"name": "add"}}])");
  const Json messages = Json::parse(R"([{"role": "user", "content": "1+1?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
        "function": {"name": "add", "arguments": "{\"a\": 1}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "2"}])");
  // A ChatML template that knows nothing of tools (SmolLM2's).
  const std::string chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                             "'<|im_end|>\\n'}}{% endfor %}";
  const TemplatedChat plain = prepare_for_template(chatml, messages, tools);
  EXPECT_TRUE(plain.tools.is_null());
  ASSERT_EQ(plain.messages.size(), 4u);
  EXPECT_EQ(plain.messages[0]["role"], "system");
  EXPECT_NE(plain.messages[0]["content"].get<std::string>().find("\"name\":\"add\""), std::string::npos);
  EXPECT_EQ(plain.messages[2]["content"], "<tool_call>\n{\"name\":\"add\",\"arguments\":{\"a\":1}}\n</tool_call>");
  EXPECT_EQ(plain.messages[3]["role"], "user");
  EXPECT_EQ(plain.messages[3]["content"], "<tool_response>\n2\n</tool_response>");

  // A template that takes tools and writes `arguments | tojson` gets objects.
  const std::string native = "{{ tools }}{% for m in messages %}{% if m.tool_calls %}"
                             "{{ m.tool_calls[0].function.arguments | tojson }}{% elif m.role == 'tool' %}{{ m.content }}"
                             "{% endif %}{% endfor %}";
  const TemplatedChat n = prepare_for_template(native, messages, tools);
  EXPECT_EQ(n.tools, tools);
  EXPECT_EQ(n.messages[1]["tool_calls"][0]["function"]["arguments"], Json({{"a", 1}}));
  EXPECT_EQ(n.messages[2]["role"], "tool");
  // A template without a system role gets the system text before the next message's.
  const TemplatedChat merged = prepare_for_template(chatml, Json::parse(R"([{"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Hi"}])"), nullptr, /*system_role=*/false);
  ASSERT_EQ(merged.messages.size(), 1u);
  EXPECT_EQ(merged.messages[0]["content"], "Be brief.\nHi");
  // One that concatenates them (DeepSeek R1's) keeps the string.
  const TemplatedChat d = prepare_for_template("{{ tools }}{{ tool['function']['arguments'] }} tool_calls 'tool'", messages, tools);
  EXPECT_EQ(d.messages[1]["tool_calls"][0]["function"]["arguments"], "{\"a\": 1}");
}

}  // namespace
}  // namespace optiq::serve
