#include "serve/tool_prompt.h"

namespace optiq::serve {
namespace {

using Json = nlohmann::ordered_json;

bool mentions(const std::string& source, const char* word) { return source.find(word) != std::string::npos; }

// Whether the template writes a call's arguments through tojson (and so wants an object).
bool wants_argument_objects(const std::string& source) {
  return mentions(source, "arguments | tojson") || mentions(source, "arguments|tojson");
}

std::string tool_instructions(const Json& tools) {
  std::string text =
      "# Tools\n\nYou may call the functions below. Their signatures are inside <tools></tools>, one JSON "
      "object per line:\n<tools>";
  for (const Json& t : tools) text += "\n" + t.dump();
  text +=
      "\n</tools>\n\nTo call a function, answer with a JSON object holding its name and arguments inside "
      "<tool_call></tool_call> tags:\n<tool_call>\n{\"name\": <function name>, \"arguments\": <arguments as a JSON "
      "object>}\n</tool_call>";
  return text;
}

// A call written as text, in the syntax the tool instructions ask for.
std::string call_text(const Json& call) {
  const Json& fn = call.contains("function") ? call["function"] : call;
  Json args = fn.value("arguments", Json::object());
  if (args.is_string()) args = Json::parse(args.get<std::string>(), nullptr, false);
  Json body = {{"name", fn.value("name", "")}, {"arguments", args.is_discarded() ? Json::object() : args}};
  return "<tool_call>\n" + body.dump() + "\n</tool_call>";
}

}  // namespace

TemplatedChat prepare_for_template(const std::string& source, Json messages, Json tools, bool system_role) {
  if (!system_role && !messages.empty() && messages[0].value("role", "") == "system") {
    const std::string system = messages[0]["content"].is_string() ? messages[0]["content"].get<std::string>() : "";
    messages.erase(messages.begin());
    if (!messages.empty() && messages[0]["content"].is_string())
      messages[0]["content"] = system + "\n" + messages[0]["content"].get<std::string>();
  }
  const bool has_tools = tools.is_array() && !tools.empty();
  const bool native_tools = mentions(source, "tools");
  const bool native_calls = mentions(source, "tool_calls");
  const bool native_results = mentions(source, "'tool'") || mentions(source, "\"tool\"") || mentions(source, "ipython");
  const bool objects = wants_argument_objects(source);

  Json out = Json::array();
  for (Json m : messages) {
    const std::string role = m.value("role", "");
    if (m.contains("tool_calls") && m["tool_calls"].is_array()) {
      if (native_calls) {
        for (Json& call : m["tool_calls"]) {
          if (!call.contains("function") || !call["function"].is_object()) continue;
          Json& args = call["function"]["arguments"];
          if (objects && args.is_string()) {
            Json parsed = Json::parse(args.get<std::string>(), nullptr, false);
            if (!parsed.is_discarded()) args = parsed;
          } else if (!objects && !args.is_string()) {
            args = args.dump();
          }
        }
      } else {
        std::string text = m["content"].is_string() ? m["content"].get<std::string>() : "";
        for (const Json& call : m["tool_calls"]) text += (text.empty() ? "" : "\n") + call_text(call);
        m.erase("tool_calls");
        m["content"] = text;
      }
    }
    if (role == "tool" && !native_results) {
      const std::string content = m["content"].is_string() ? m["content"].get<std::string>() : m["content"].dump();
      m = {{"role", "user"}, {"content", "<tool_response>\n" + content + "\n</tool_response>"}};
    }
    out.push_back(std::move(m));
  }

  if (!has_tools) return {out, nullptr};
  if (mentions(source, "message['tools']") || mentions(source, "message.tools")) {
    // Phi-4-mini: the system message carries the tool list as a JSON string.
    if (out.empty() || out[0].value("role", "") != "system") out.insert(out.begin(), Json{{"role", "system"}, {"content", ""}});
    out[0]["tools"] = tools.dump();
    return {out, tools};
  }
  if (native_tools) return {out, tools};
  const std::string instructions = tool_instructions(tools);
  if (!out.empty() && out[0].value("role", "") == "system" && out[0]["content"].is_string()) {
    out[0]["content"] = out[0]["content"].get<std::string>() + "\n\n" + instructions;
  } else {
    out.insert(out.begin(), Json{{"role", "system"}, {"content", instructions}});
  }
  return {out, nullptr};
}

}  // namespace optiq::serve
