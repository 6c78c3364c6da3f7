// The prompt a chat model answers: its own chat template over [system], user (and optional
// tools), with the assistant's turn opened. A template that writes BOS itself loses it here when
// the vocabulary adds BOS on tokenizing anyway, as llama.cpp does, so the prompt never starts
// with two.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace optiq {

// A whole conversation (OpenAI-style messages), tools null for none; `vars` are extra template
// variables (enable_thinking, ...), as ChatRequest::vars.
std::string chat_prompt(const ChatTemplate& tmpl, const Tokenizer& tok, const nlohmann::ordered_json& messages,
                        const nlohmann::ordered_json& tools,
                        const std::vector<std::pair<std::string, nlohmann::ordered_json>>& vars = {});

// [system (when not empty)], user.
std::string chat_prompt(const ChatTemplate& tmpl, const Tokenizer& tok, const std::string& system,
                        const std::string& user, const nlohmann::ordered_json& tools = nullptr);

// The template a command runs: the model's own, or with `template_file` (not empty) that bare
// .jinja file, given the tokenizer's BOS, EOS, UNK and PAD texts as its special tokens (a model
// without a template of its own has none to lend it). Throws InputError as load_chat_template.
ChatTemplate load_chat_template(const std::filesystem::path& model, const std::string& template_file,
                                const Tokenizer& tok);

}  // namespace optiq
