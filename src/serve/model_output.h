// A chat model's raw output split into what the APIs return apart: reasoning (<think>...</think>,
// OpenAI reasoning_content, Anthropic thinking blocks), the answer text, and tool calls (OpenAI
// tool_calls, Anthropic tool_use blocks).
//
// Tool calls are read in every syntax of the families whose templates ../shared/models/templates
// holds, whatever the template: the markers do not collide, so one reader serves all.
//   <tool_call>{"name": ..., "arguments": {...}}</tool_call>      Qwen 2.5/3, Hermes, SmolLM (and
//                                                                 optiq's own prompt for templates
//                                                                 without tools)
//   <|tool_call|>[{"name": ..., "arguments": ...}]<|/tool_call|>  Phi-4-mini
//   [TOOL_CALLS][{"name": ..., "arguments": ...}]                 Mistral
//   <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME
//   ```json ARGS```<｜tool▁call▁end｜>...                           DeepSeek R1 / V3
//   {"name": ..., "parameters": {...}} as the whole answer        Llama 3.x (custom tools)
// A call counts only when its name is one of the request's tools and its arguments are a JSON
// object; otherwise the text stays answer text.
#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "constrain/json_constraint.h"

namespace optiq::serve {

struct ToolCall {
  std::string name;
  nlohmann::ordered_json arguments;  // an object
};

struct ModelOutput {
  std::string reasoning;  // inside <think>...</think>, trimmed
  std::string content;    // the answer text, trimmed when reasoning or calls were split off
  std::vector<ToolCall> calls;
};

struct OutputFormat {
  // The prompt ends inside an opened <think> (DeepSeek R1's template, Qwen3's with thinking
  // forced): the output starts in reasoning.
  bool reasoning_open = false;
  bool split_reasoning = true;
  std::vector<std::string> tool_names;  // the request's tools; empty: no call parsing
};

// The whole output, once generation ended.
ModelOutput parse_model_output(std::string_view text, const OutputFormat& format);

// While streaming: how much of the reasoning and the answer text can be sent now. Text that may
// still turn out to be (part of) a tool call or a <think> tag is held back until it is decided.
struct StreamableOutput {
  std::string reasoning;
  std::string content;
};
StreamableOutput streamable_output(std::string_view text_so_far, const OutputFormat& format);

// tool_choice "required" or a named tool: the output must be exactly one call, written as
// <tool_call>\n{"name": NAME, "arguments": {...}}\n</tool_call> with the arguments valid against
// that tool's parameters schema. `tools`: OpenAI-style [{type, function: {name, parameters}}];
// `only`: the named tool, or empty for any of them. Throws InputError for a schema it cannot
// enforce.
std::shared_ptr<const constrain::JsonConstraint> forced_tool_call(const nlohmann::ordered_json& tools,
                                                                  const std::string& only);

}  // namespace optiq::serve
