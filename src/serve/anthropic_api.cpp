#include "serve/anthropic_api.h"

#include <cstdint>

#include "serve/api_errors.h"

namespace optiq::serve {
namespace {

constexpr size_t kMaxStopSequences = 16;

// Text blocks joined with newlines; other block types (images, tool_use, tool_result, ...) are
// refused: this slice serves text only and parses no tool calls.
std::string text_of_blocks(const Json& content, const std::string& param) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) throw ApiError(400, param + ": must be a string or a list of content blocks", param);
  std::string text;
  for (const Json& block : content) {
    // find_field, not value("type", ""): value() throws json's type_error for a non-string type.
    const Json* type = block.is_object() ? find_field(block, "type") : nullptr;
    if (!type || *type != "text" || !block.contains("text") || !block["text"].is_string())
      throw ApiError(400, param + ": only text blocks ({\"type\": \"text\", \"text\": ...}) are supported", param);
    if (!text.empty()) text += '\n';
    text += block["text"].get<std::string>();
  }
  return text;
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
    req.messages.push_back({{"role", *role}, {"content", text_of_blocks(*content, param + ".content")}});
  }
  if (const Json* tools = find_field(body, "tools"); tools && !tools->empty()) req.tools = template_tools(*tools);
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
    case FinishReason::Length: return "max_tokens";
    default: return "end_turn";
  }
}

Json anthropic_message(const AnthropicResponseHead& head, const GenerationResult& r) {
  Json content = Json::array();
  if (!r.text.empty()) content.push_back({{"type", "text"}, {"text", r.text}});
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

std::string anthropic_content_block_start() {
  return event("content_block_start",
               {{"type", "content_block_start"}, {"index", 0}, {"content_block", {{"type", "text"}, {"text", ""}}}});
}

std::string anthropic_ping() { return event("ping", {{"type", "ping"}}); }

std::string anthropic_text_delta(const std::string& text) {
  return event("content_block_delta",
               {{"type", "content_block_delta"}, {"index", 0}, {"delta", {{"type", "text_delta"}, {"text", text}}}});
}

std::string anthropic_content_block_stop() { return event("content_block_stop", {{"type", "content_block_stop"}, {"index", 0}}); }

std::string anthropic_message_delta(const GenerationResult& r) {
  Json delta = {{"stop_reason", anthropic_stop_reason(r.finish)},
                {"stop_sequence", r.finish == FinishReason::StopSequence ? Json(r.stop_sequence) : Json(nullptr)}};
  return event("message_delta",
               {{"type", "message_delta"}, {"delta", delta}, {"usage", {{"output_tokens", r.completion_tokens}}}});
}

std::string anthropic_message_stop() { return event("message_stop", {{"type", "message_stop"}}); }

std::string anthropic_stream_error(const std::string& error_json) { return "event: error\ndata: " + error_json + "\n\n"; }

}  // namespace optiq::serve
