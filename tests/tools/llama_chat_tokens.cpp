// Test-only bridge to llama.cpp's chat prompt, built by scripts/build_llama_tools.sh against the
// prebuilt libllama-common (not part of optiq's CMake build): the token ids llama-server feeds
// its model for an OpenAI chat request, i.e. what its /apply-template renders
// (common_chat_templates_apply, the jinja path, assistant turn opened) tokenized as its
// completion path does (common_tokenize with add_special and parse_special).
//
// Usage: llama-chat-tokens MODEL.gguf TEMPLATE_FILE|- REQUEST.json
//   TEMPLATE_FILE: a .jinja file overriding the model's template ("-": the model's own);
//   REQUEST.json: {"messages": [...], "tools": [...] (optional), "chat_template_kwargs": {...}
//   (optional)}, as the OpenAI API takes them.
// Prints the ids on one line, separated by spaces; exits 1 with a message on any error.
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "chat.h"
#include "common.h"
#include "llama.h"

namespace {

std::string read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(std::string("cannot read ") + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void quiet_log(ggml_log_level, const char*, void*) {}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: llama-chat-tokens MODEL.gguf TEMPLATE_FILE|- REQUEST.json\n");
    return 2;
  }
  try {
    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    llama_model* model = llama_model_load_from_file(argv[1], mp);
    if (!model) throw std::runtime_error(std::string("cannot load ") + argv[1]);
    const std::string override_template = std::string(argv[2]) == "-" ? "" : read_file(argv[2]);
    common_chat_templates_ptr tmpls = common_chat_templates_init(model, override_template);

    const common_json request = common_json::parse(read_file(argv[3]));
    common_chat_templates_inputs inputs;
    inputs.messages = common_chat_msgs_parse_oaicompat(request.at("messages"));
    if (request.contains("tools")) inputs.tools = common_chat_tools_parse_oaicompat(request.at("tools"));
    inputs.use_jinja = true;
    inputs.add_generation_prompt = true;
    if (request.contains("chat_template_kwargs")) {
      for (const auto& item : request.at("chat_template_kwargs").items()) {
        inputs.chat_template_kwargs[item.key()] = item.value().dump();
        if (item.key() == "enable_thinking") inputs.enable_thinking = item.value().dump() == "true";
      }
    }
    const common_chat_params params = common_chat_templates_apply(tmpls.get(), inputs);
    const std::vector<llama_token> ids = common_tokenize(llama_model_get_vocab(model), params.prompt,
                                                         /*add_special=*/true, /*parse_special=*/true);
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
    std::printf("\n");
    llama_model_free(model);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "llama-chat-tokens: %s\n", e.what());
    return 1;
  }
}
