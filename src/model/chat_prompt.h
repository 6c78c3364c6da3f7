// The prompt a chat model answers: its own chat template over [system], user (and optional
// tools), with the assistant's turn opened. A template that writes BOS itself loses it here when
// the vocabulary adds BOS on tokenizing anyway, as llama.cpp does, so the prompt never starts
// with two.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace optiq {

// A whole conversation (OpenAI-style messages), tools null for none.
std::string chat_prompt(const ChatTemplate& tmpl, const Tokenizer& tok, const nlohmann::ordered_json& messages,
                        const nlohmann::ordered_json& tools);

// [system (when not empty)], user.
std::string chat_prompt(const ChatTemplate& tmpl, const Tokenizer& tok, const std::string& system,
                        const std::string& user, const nlohmann::ordered_json& tools = nullptr);

}  // namespace optiq
