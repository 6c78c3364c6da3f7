#include "model/chat_prompt.h"

namespace optiq {

std::string chat_prompt(const ChatTemplate& tmpl, const Tokenizer& tok, const nlohmann::ordered_json& messages,
                        const nlohmann::ordered_json& tools,
                        const std::vector<std::pair<std::string, nlohmann::ordered_json>>& vars) {
  ChatRequest req;
  req.messages = messages;
  req.tools = tools;
  req.vars = vars;
  req.add_generation_prompt = true;
  std::string text = render_chat(tmpl, req);
  if (tok.add_bos && tok.bos >= 0) {
    const std::string& bos = tok.tokens[static_cast<size_t>(tok.bos)].text;
    if (!bos.empty() && text.starts_with(bos)) text.erase(0, bos.size());
  }
  return text;
}

std::string chat_prompt(const ChatTemplate& tmpl, const Tokenizer& tok, const std::string& system,
                        const std::string& user, const nlohmann::ordered_json& tools) {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  if (!system.empty()) messages.push_back({{"role", "system"}, {"content", system}});
  messages.push_back({{"role", "user"}, {"content", user}});
  return chat_prompt(tmpl, tok, messages, tools);
}

ChatTemplate load_chat_template(const std::filesystem::path& model, const std::string& template_file,
                                const Tokenizer& tok) {
  if (template_file.empty()) return load_chat_template(model);
  ChatTemplate tmpl = chat_template_from_file(template_file);
  const std::pair<const char*, int32_t> ids[] = {
      {"bos_token", tok.bos}, {"eos_token", tok.eos}, {"unk_token", tok.unk}, {"pad_token", tok.pad}};
  for (const auto& [name, id] : ids)
    if (id >= 0 && id < tok.n_tokens()) tmpl.special_tokens.emplace_back(name, tok.tokens[static_cast<size_t>(id)].text);
  return tmpl;
}

}  // namespace optiq
