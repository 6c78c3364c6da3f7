// Chat templates: where a model keeps its template and special tokens, and rendering a
// conversation the way Hugging Face transformers' apply_chat_template does (same globals, same
// jinja2 environment semantics), so the prompt optiq builds is byte-identical to Python's.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace optiq {

struct ChatTemplate {
  std::string origin;  // the file the template came from, for error messages
  // (name, source). One unnamed template is "default"; HF's list form and GGUF's
  // tokenizer.chat_template.<name> keys give more (e.g. "tool_use").
  std::vector<std::pair<std::string, std::string>> templates;
  // HF's special_tokens_map: bos_token, eos_token, unk_token, sep_token, pad_token, cls_token,
  // mask_token (strings) and additional_special_tokens (list), only those set.
  std::vector<std::pair<std::string, nlohmann::ordered_json>> special_tokens;
};

// From a Hugging Face folder (chat_template.jinja, else chat_template.json, else
// tokenizer_config.json; special tokens from tokenizer_config.json overridden by
// special_tokens_map.json, as transformers loads them) or a .gguf (tokenizer.chat_template and
// the token ids in tokenizer.ggml.*_token_id). Throws InputError when there is none.
ChatTemplate load_chat_template(const std::filesystem::path& model);

// A bare .jinja file: the template only, no special tokens.
ChatTemplate chat_template_from_file(const std::filesystem::path& file);

// The source render_chat uses: the template named "tool_use" when there are tools and it
// exists, else "default" (or the only one), as transformers chooses. InputError when none fits.
const std::string& chat_template_source(const ChatTemplate& tmpl, bool tools);

struct ChatRequest {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();  // OpenAI-style
  nlohmann::ordered_json tools;  // null: no tools (the template sees tools = None)
  bool add_generation_prompt = false;
  // Extra template variables (enable_thinking, bos_token, ...); they override the rest.
  std::vector<std::pair<std::string, nlohmann::ordered_json>> vars;
};

// Renders with transformers' globals: messages, tools, documents (None),
// add_generation_prompt, the special tokens, raise_exception and strftime_now. strftime_now
// reads the clock in local time, or OPTIQ_FIXED_DATE (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS) when
// set, so that renders are reproducible. Throws InputError("<origin>", -, "line N: ...").
std::string render_chat(const ChatTemplate& tmpl, const ChatRequest& request);

}  // namespace optiq
