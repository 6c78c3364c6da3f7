#include "model/chat_prompt.h"

namespace optiq {

std::string chat_prompt(const ChatTemplate& tmpl, const Tokenizer& tok, const nlohmann::ordered_json& messages,
                        const nlohmann::ordered_json& tools) {
  ChatRequest req;
  req.messages = messages;
  req.tools = tools;
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

}  // namespace optiq
