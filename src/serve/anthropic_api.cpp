#include "serve/anthropic_api.h"

#include <cstdint>

#include "serve/api_errors.h"

namespace optiq::serve {
namespace {

constexpr size_t kMaxStopSequences = 16;

// Text blocks joined with newlines (a string as it is); other block types are a 400.
std::string text_of_blocks(const Json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) throw ApiError(400, param + ": must be a string or a list of content blocks", param);
  std::string text;
  for (const Json& block : content) {
    // find_field, not value("type", ""): value() throws json's type_error for a non-string type.
    const Json* type = block.is_object() ? find_field(block, "type") : nullptr;
    if (!type || *type != "text" || !block.contains("text") || !block["text"].is_string())
      throw ApiError(400, param + ": only text blocks ({\"type\": \"text\", \"text\": ...}) are supported here", param);
    if (!text.empty()) text += '\n';
    text += block["text"].get<std::string>();
  }
  return text;
}

const std::string& string_in(const Json& block, const char* key, const std::string& param) {
  const Json* v = find_field(block, key);
  if (!v || !v->is_string()) throw ApiError(400, param + "." + key + ": Field required (a string)", param + "." + key);
  return v->get_ref<const std::string&>();
}

// One Anthropic message as the OpenAI-style messages chat templates take: text blocks joined;
// an assistant's tool_use blocks as tool_calls (arguments a JSON string, as OpenAI sends them);
// a user's tool_result blocks as "tool" messages before the user's text; thinking blocks left
// out (templates drop past reasoning).
void add_message(const std::string& role, const Json& content, const std::string& param, Json& out) {
  if (content.is_string()) {
    out.push_back({{"role", role}, {"content", content}});
    return;
  }
  if (!content.is_array()) throw ApiError(400, param + ": must be a string or a list of content blocks", param);
  std::string text;
  Json calls = Json::array();
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& block = content[i];
    const std::string bparam = param + "." + std::to_string(i);
    const Json* type = block.is_object() ? find_field(block, "type") : nullptr;
    if (!type || !type->is_string()) throw ApiError(400, bparam + ".type: Field required", bparam + ".type");
    if (*type == "text") {
      if (!text.empty()) text += '\n';
      text += string_in(block, "text", bparam);
    } else if (*type == "tool_use" && role == "assistant") {
      const Json* input = find_field(block, "input");
      if (!input || !input->is_object()) throw ApiError(400, bparam + ".input: must be an object", bparam + ".input");
      calls.push_back({{"id", string_in(block, "id", bparam)},
                       {"type", "function"},
                       {"function", {{"name", string_in(block, "name", bparam)}, {"arguments", input->dump()}}}});
    } else if (*type == "tool_result" && role == "user") {
      const Json* result = find_field(block, "content");
      std::string result_text = result ? text_of_blocks(*result, bparam + ".content") : "";
      if (const auto err = bool_field(block, "is_error"); err && *err) result_text = "Error: " + result_text;
      out.push_back({{"role", "tool"}, {"tool_call_id", string_in(block, "tool_use_id", bparam)}, {"content", result_text}});
    } else if ((*type == "thinking" || *type == "redacted_thinking") && role == "assistant") {
      continue;
    } else {
      throw ApiError(400, bparam + ": unsupported content block type for a " + role + " message (text" +
                              (role == "assistant" ? ", tool_use, thinking" : ", tool_result") + " are)",
                     bparam + ".type");
    }
  }
  if (role == "assistant") {
    Json msg = {{"role", role}, {"content", calls.empty() || !text.empty() ? Json(text) : Json(nullptr)}};
    if (!calls.empty()) msg["tool_calls"] = calls;
    out.push_back(std::move(msg));
  } else if (!text.empty() || out.empty() || out.back().value("role", "") != "tool") {
    out.push_back({{"role", role}, {"content", text}});
  }
}

// Anthropic's tools ({name, description, input_schema}) in the OpenAI function form chat
// templates are written for.
Json template_tools(const Json& tools) {
  if (!tools.is_array()) throw ApiError(400, "tools: must be a list of tool definitions", "tools");
  Json out = Json::array();
  for (size_t i = 0; i < tools.size(); ++i) {
    const Json& t = tools[i];
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
      throw ApiError(400, "tools[" + std::to_string(i) + "]: needs a string 'name'", "tools");
    Json fn = {{"name", t["name"]}};
    if (t.contains("description")) fn["description"] = t["description"];
    fn["parameters"] = t.value("input_schema", Json::object());
    out.push_back({{"type", "function"}, {"function", fn}});
  }
  return out;
}

// tool_choice: {"type": "auto"} (the default), "none" (calls not parsed), "any" (one call of any
// tool, forced by constrained decoding) or "tool" with "name" (that tool's call, forced).
void apply_tool_choice(const Json& body, GenerationRequest& req) {
  const Json* choice = find_field(body, "tool_choice");
  if (!choice) return;
  const Json* type = choice->is_object() ? find_field(*choice, "type") : nullptr;
  if (!type || !type->is_string() || (*type != "auto" && *type != "none" && *type != "any" && *type != "tool"))
    throw ApiError(400, "tool_choice.type: must be auto, any, tool or none", "tool_choice.type");
  if (*type == "auto") return;
  if (*type == "none") {
    req.output_format.tool_names.clear();
    return;
  }
  force_tool_call(req, *type == "tool" ? string_in(*choice, "name", "tool_choice") : "", "tool_choice", "tool_choice.name");
}

GenerationRequest parse_conversation(const Json& body, const ServedModel& model) {
  check_model_name(body, model, /*required=*/true);
  GenerationRequest req;
  req.chat = true;
  if (const Json* system = find_field(body, "system"))
    req.messages.push_back({{"role", "system"}, {"content", text_of_blocks(*system, "system")}});
  const Json& messages = required_field(body, "messages");
  if (!messages.is_array() || messages.empty())
    throw ApiError(400, "messages: must be a non-empty list of messages", "messages");
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    const std::string param = "messages." + std::to_string(i);
    if (!m.is_object()) throw ApiError(400, param + ": must be an object", param);
    const Json* role = find_field(m, "role");
    if (!role || (*role != "user" && *role != "assistant"))
      throw ApiError(400, param + ".role: must be \"user\" or \"assistant\"", param + ".role");
    const Json* content = find_field(m, "content");
    if (!content) throw ApiError(400, param + ".content: Field required", param + ".content");
    add_message(role->get<std::string>(), *content, param + ".content", req.messages);
  }
  if (const Json* tools = find_field(body, "tools"); tools && !tools->empty()) {
    req.tools = template_tools(*tools);
    for (const Json& t : req.tools) req.output_format.tool_names.push_back(t["function"]["name"].get<std::string>());
  }
  apply_tool_choice(body, req);
  if (const Json* thinking = find_field(body, "thinking")) {
    const Json* type = thinking->is_object() ? find_field(*thinking, "type") : nullptr;
    if (!type || (*type != "enabled" && *type != "disabled"))
      throw ApiError(400, "thinking.type: must be \"enabled\" or \"disabled\"", "thinking.type");
    req.template_vars.emplace_back("enable_thinking", *type == "enabled");  // Qwen3's switch
  }
  return req;
}

std::string event(const char* type, const Json& data) {
  return std::string("event: ") + type + "\ndata: " + data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n\n";
}

// Anthropic's usage splits the prompt: input_tokens are those after the cache, and the whole
// prompt is input_tokens + cache_creation_input_tokens + cache_read_input_tokens. A cached
// prefix here is a read; nothing is written on request (every prompt stays in its slot), so
// creation stays 0.
Json anthropic_usage(int64_t prompt_tokens, int64_t cached_tokens, int64_t output_tokens) {
  return {{"input_tokens", prompt_tokens - cached_tokens},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", cached_tokens},
          {"output_tokens", output_tokens}};
}

}  // namespace

GenerationRequest parse_messages(const Json& body, const ServedModel& model) {
  GenerationRequest req = parse_conversation(body, model);
  required_field(body, "max_tokens");
  req.max_tokens = integer_field(body, "max_tokens", 1, INT32_MAX);
  if (const auto t = number_field(body, "temperature", 0.0, 1.0)) req.sampling.temperature = static_cast<float>(*t);
  if (const auto p = number_field(body, "top_p", 0.0, 1.0)) req.sampling.top_p = static_cast<float>(*p);
  if (const auto k = integer_field(body, "top_k", 0, 1 << 30)) req.sampling.top_k = static_cast<int32_t>(*k);
  if (const Json* stops = find_field(body, "stop_sequences"); stops && !stops->is_array())
    throw ApiError(400, "stop_sequences: must be a list of strings", "stop_sequences");
  req.stop = string_or_list_field(body, "stop_sequences", kMaxStopSequences);
  req.stream = bool_field(body, "stream").value_or(false);
  return req;
}

GenerationRequest parse_count_tokens(const Json& body, const ServedModel& model) { return parse_conversation(body, model); }

const char* anthropic_stop_reason(FinishReason r) {
  switch (r) {
    case FinishReason::StopSequence: return "stop_sequence";
    case FinishReason::ToolCalls: return "tool_use";
    case FinishReason::Length: return "max_tokens";
    default: return "end_turn";
  }
}

Json anthropic_message(const AnthropicResponseHead& head, const GenerationResult& r) {
  Json content = Json::array();
  const ModelOutput& out = r.output;
  if (!out.reasoning.empty()) content.push_back({{"type", "thinking"}, {"thinking", out.reasoning}, {"signature", ""}});
  if (!out.content.empty()) content.push_back({{"type", "text"}, {"text", out.content}});
  for (const ToolCall& c : out.calls)
    content.push_back({{"type", "tool_use"}, {"id", random_id("toolu_")}, {"name", c.name}, {"input", c.arguments}});
  return {{"id", head.id},
          {"type", "message"},
          {"role", "assistant"},
          {"model", head.model},
          {"content", content},
          {"stop_reason", anthropic_stop_reason(r.finish)},
          {"stop_sequence", r.finish == FinishReason::StopSequence ? Json(r.stop_sequence) : Json(nullptr)},
          {"usage", anthropic_usage(r.prompt_tokens, r.cached_tokens, r.completion_tokens)}};
}

std::string anthropic_message_start(const AnthropicResponseHead& head, int64_t input_tokens, int64_t cached_tokens) {
  Json message = {{"id", head.id},
                  {"type", "message"},
                  {"role", "assistant"},
                  {"model", head.model},
                  {"content", Json::array()},
                  {"stop_reason", nullptr},
                  {"stop_sequence", nullptr},
                  {"usage", anthropic_usage(input_tokens, cached_tokens, 0)}};
  return event("message_start", {{"type", "message_start"}, {"message", message}});
}

std::string anthropic_ping() { return event("ping", {{"type", "ping"}}); }

std::string AnthropicContentStream::open(const char* type, const Json& block) {
  std::string events = close_open();
  ++index_;
  open_ = type;
  return events + event("content_block_start", {{"type", "content_block_start"}, {"index", index_}, {"content_block", block}});
}

std::string AnthropicContentStream::close_open() {
  if (!open_) return "";
  open_ = nullptr;
  return event("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
}

std::string AnthropicContentStream::delta(const char* type, const char* delta_type, const char* field, const std::string& text) {
  if (text.empty()) return "";
  std::string events;
  if (!open_ || std::string(open_) != type) {
    Json block = {{"type", type}, {field, ""}};
    if (std::string(type) == "thinking") block["signature"] = "";
    events = open(type, block);
  }
  return events + event("content_block_delta",
                        {{"type", "content_block_delta"}, {"index", index_}, {"delta", {{"type", delta_type}, {field, text}}}});
}

std::string AnthropicContentStream::thinking(const std::string& text) { return delta("thinking", "thinking_delta", "thinking", text); }

std::string AnthropicContentStream::text(const std::string& text) { return delta("text", "text_delta", "text", text); }

std::string AnthropicContentStream::tool_use(const ToolCall& call) {
  std::string events =
      open("tool_use", {{"type", "tool_use"}, {"id", random_id("toolu_")}, {"name", call.name}, {"input", Json::object()}});
  events += event("content_block_delta", {{"type", "content_block_delta"},
                                          {"index", index_},
                                          {"delta", {{"type", "input_json_delta"}, {"partial_json", call.arguments.dump()}}}});
  return events + close_open();
}

std::string AnthropicContentStream::close() {
  if (index_ < 0) {  // an empty answer: one empty text block
    std::string events = open("text", {{"type", "text"}, {"text", ""}});
    return events + close_open();
  }
  return close_open();
}

std::string anthropic_message_delta(const GenerationResult& r) {
  Json delta = {{"stop_reason", anthropic_stop_reason(r.finish)},
                {"stop_sequence", r.finish == FinishReason::StopSequence ? Json(r.stop_sequence) : Json(nullptr)}};
  return event("message_delta",
               {{"type", "message_delta"}, {"delta", delta}, {"usage", {{"output_tokens", r.completion_tokens}}}});
}

std::string anthropic_message_stop() { return event("message_stop", {{"type", "message_stop"}}); }

std::string anthropic_stream_error(const std::string& error_json) { return "event: error\ndata: " + error_json + "\n\n"; }

}  // namespace optiq::serve
