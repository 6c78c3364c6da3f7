// Chat samples to text through the target model's chat template. Real templates differ in what
// they accept: some have no system role or demand strict user/assistant alternation (Mistral,
// Gemma), some allow one tool call per turn (Llama 3.2), some concatenate arguments as strings
// (DeepSeek R1), some ignore tool calls altogether (SmolLM2). A sample the template rejects is
// retried in simpler forms instead of failing the whole mix; the mode says which form was used.
#include "calib/mix.h"
#include "util/error.h"

namespace optiq::calib {
using ojson = nlohmann::ordered_json;

namespace {

bool has_tool_parts(const MixSample& s) {
  if (!s.tools.is_null()) return true;
  for (const ojson& m : s.messages)
    if (m.contains("tool_calls") || m["role"] == "tool") return true;
  return false;
}

// Templates that never mention tool_calls would drop the calls silently instead of raising.
bool template_reads_tool_calls(const ChatTemplate& tmpl) {
  for (const auto& [name, source] : tmpl.templates)
    if (source.find("tool_calls") != std::string::npos) return true;
  return false;
}

std::string tool_call_text(const ojson& call) {
  const ojson& fn = call["function"];
  const ojson& args = fn["arguments"];
  return "<tool_call>\n{\"name\": " + fn["name"].dump() +
         ", \"arguments\": " + (args.is_string() ? args.get<std::string>() : args.dump()) +
         "}\n</tool_call>";
}

std::string tools_text(const ojson& tools) {
  std::string out = "Available tools:";
  for (const ojson& t : tools) out += "\n" + t.dump();
  return out;
}

std::string content_of(const ojson& m) { return m["content"].is_string() ? m["content"].get<std::string>() : ""; }

void append_block(std::string& to, const std::string& text) {
  if (text.empty()) return;
  if (!to.empty()) to += "\n\n";
  to += text;
}

ojson with_string_arguments(const ojson& messages) {
  ojson out = messages;
  for (ojson& m : out)
    if (m.contains("tool_calls"))
      for (ojson& call : m["tool_calls"])
        if (ojson& args = call["function"]["arguments"]; !args.is_string()) args = args.dump();
  return out;
}

// Tool calls become text in the assistant turn, tool results user turns, the schemas part of
// the system text; consecutive turns of one role merge. With merge_system the system text opens
// the first user turn, for templates without a system role.
ojson flattened(const MixSample& s, bool merge_system) {
  std::vector<std::pair<std::string, std::string>> turns;  // (role, content)
  std::string system;
  for (const ojson& m : s.messages)
    if (m["role"] == "system") append_block(system, content_of(m));
  if (!s.tools.is_null()) append_block(system, tools_text(s.tools));
  for (const ojson& m : s.messages) {
    std::string role = m["role"].get<std::string>(), text = content_of(m);
    if (role == "system") continue;
    if (role == "tool") {
      role = "user";
      text = "<tool_response>\n" + text + "\n</tool_response>";
    }
    if (m.contains("tool_calls"))
      for (const ojson& call : m["tool_calls"]) append_block(text, tool_call_text(call));
    if (!turns.empty() && turns.back().first == role) append_block(turns.back().second, text);
    else turns.emplace_back(role, text);
  }
  ojson out = ojson::array();
  if (!system.empty()) {
    if (!merge_system) {
      out.push_back({{"role", "system"}, {"content", system}});
    } else if (!turns.empty() && turns.front().first == "user") {
      turns.front().second = system + "\n\n" + turns.front().second;
    } else {
      turns.insert(turns.begin(), {"user", system});
    }
  }
  for (auto& [role, text] : turns) out.push_back({{"role", role}, {"content", text}});
  return out;
}

}  // namespace

const char* render_mode_name(RenderMode mode) {
  switch (mode) {
    case RenderMode::Text: return "text";
    case RenderMode::Template: return "template";
    case RenderMode::StringArguments: return "template, string arguments";
    case RenderMode::Flattened: return "template, tool turns as text";
    case RenderMode::FlattenedNoSystem: return "template, tool turns as text, system in first user turn";
    case RenderMode::Fallback: return "fallback format";
  }
  return "?";
}

std::string render_fallback(const ojson& messages, const ojson& tools) {
  std::string out;
  if (tools.is_array() && !tools.empty()) {
    out = "Tools:";
    for (const ojson& t : tools) out += "\n" + t.dump();
  }
  for (const ojson& m : messages) {
    const std::string role = m["role"].get<std::string>();
    std::string block = role == "system"      ? "System: "
                        : role == "user"      ? "User: "
                        : role == "assistant" ? "Assistant: "
                                              : "Tool: ";
    block += content_of(m);
    if (m.contains("tool_calls"))
      for (const ojson& call : m["tool_calls"]) block += (block.back() == ' ' ? "" : "\n") + tool_call_text(call);
    append_block(out, block);
  }
  return out;
}

std::string render_sample(const MixSample& sample, const ChatTemplate* tmpl, const std::string& origin,
                          RenderMode* mode) {
  auto set_mode = [&](RenderMode m) {
    if (mode) *mode = m;
  };
  if (!sample.is_chat()) {
    set_mode(RenderMode::Text);
    return sample.text;
  }
  if (!tmpl) {
    set_mode(RenderMode::Fallback);
    return render_fallback(sample.messages, sample.tools);
  }
  const bool tool_parts = has_tool_parts(sample);
  const bool native_tools = !tool_parts || template_reads_tool_calls(*tmpl);
  std::vector<RenderMode> ladder;
  if (native_tools) ladder.push_back(RenderMode::Template);
  if (native_tools && tool_parts) ladder.push_back(RenderMode::StringArguments);
  ladder.push_back(RenderMode::Flattened);
  ladder.push_back(RenderMode::FlattenedNoSystem);

  std::string last_error;
  for (RenderMode m : ladder) {
    ChatRequest req;
    switch (m) {
      case RenderMode::Template:
        req.messages = sample.messages;
        req.tools = sample.tools;
        break;
      case RenderMode::StringArguments:
        req.messages = with_string_arguments(sample.messages);
        req.tools = sample.tools;
        break;
      default:
        req.messages = flattened(sample, m == RenderMode::FlattenedNoSystem);
        break;
    }
    try {
      std::string text = render_chat(*tmpl, req);
      set_mode(m);
      return text;
    } catch (const InputError& e) {
      last_error = e.what();
    }
  }
  throw InputError(origin, std::nullopt,
                   "line " + std::to_string(sample.line) +
                       ": the chat template cannot render this sample, even simplified: " + last_error);
}

}  // namespace optiq::calib
