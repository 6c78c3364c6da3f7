// A conversation with tools, tool calls and tool results, reshaped for the chat template that
// renders it. Templates differ in what they take:
//  - tool-call arguments: an object (templates that write `arguments | tojson`: Qwen3, Llama 3)
//    or the JSON string OpenAI sends (templates that concatenate it: DeepSeek R1);
//  - templates that never mention `tools` (SmolLM2, Gemma 3, Mistral v0.3's first template) get
//    the tools described in the system message, in the <tool_call> syntax model_output.h reads,
//    and past calls written into the assistant's text the same way;
//  - templates that render no tool role get tool results as user turns in <tool_response> tags;
//  - Phi-4-mini's reads the tools as a JSON string from the system message's `tools` field;
//  - templates without a system role (Mistral v0.3's first raises on one) get the system text
//    at the start of the next message, separated by a newline, as llama.cpp's server does.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace optiq::serve {

struct TemplatedChat {
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;  // null when the template is not to see them
};

// `messages`: OpenAI-style (role, content, tool_calls with function.arguments a JSON string,
// tool_call_id); `tools`: OpenAI-style tool list or null; `template_source`: the Jinja source
// that will render them; `system_role`: whether it renders a system message (found by trying,
// see Generator).
TemplatedChat prepare_for_template(const std::string& template_source, nlohmann::ordered_json messages,
                                   nlohmann::ordered_json tools, bool system_role = true);

}  // namespace optiq::serve
