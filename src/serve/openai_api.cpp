#include "serve/openai_api.h"

#include <algorithm>
#include <cstdint>
#include <memory>

#include "serve/api_errors.h"
#include "util/error.h"

namespace optiq::serve {
namespace {

// Most stop sequences a request may give (OpenAI allows 4; llama.cpp's server more).
constexpr size_t kMaxStop = 16;

[[noreturn]] void unsupported(const char* param, const std::string& what) {
  throw ApiError(400, std::string("'") + param + "' " + what, param, "unsupported_parameter");
}

// A message's content as one string: a string as it is, a list of text parts joined with
// newlines (optiq runs text-only models; templates mostly expect a string). Null stays null
// (an assistant message that only calls tools).
Json message_content(const Json& content, size_t index) {
  const std::string param = "messages[" + std::to_string(index) + "].content";
  if (content.is_null() || content.is_string()) return content;
  if (!content.is_array()) throw ApiError(400, "'" + param + "' must be a string or a list of content parts", param);
  std::string text;
  for (const Json& part : content) {
    const Json* type = part.is_object() ? find_field(part, "type") : nullptr;
    if (!type || *type != "text" || !part.contains("text") || !part["text"].is_string())
      throw ApiError(400, "'" + param + "': only text parts ({\"type\": \"text\", \"text\": ...}) are supported", param);
    if (!text.empty()) text += '\n';
    text += part["text"].get<std::string>();
  }
  return text;
}

Json chat_messages(const Json& body) {
  const Json& messages = required_field(body, "messages");
  if (!messages.is_array() || messages.empty())
    throw ApiError(400, "'messages' must be a non-empty list of messages", "messages");
  Json out = Json::array();
  for (size_t i = 0; i < messages.size(); ++i) {
    const Json& m = messages[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object()) throw ApiError(400, "'" + param + "' must be an object", param);
    const Json* role = find_field(m, "role");
    static const char* kRoles[] = {"system", "developer", "user", "assistant", "tool"};
    if (!role || !role->is_string() || std::find(std::begin(kRoles), std::end(kRoles), role->get<std::string>()) == std::end(kRoles))
      throw ApiError(400, "'" + param + ".role' must be one of system, developer, user, assistant, tool", param + ".role");
    Json msg = m;  // tool_calls, tool_call_id, name, ... go to the template as they are
    // Templates know "system"; OpenAI's newer models call it "developer".
    if (*role == "developer") msg["role"] = "system";
    msg["content"] = message_content(m.contains("content") ? m["content"] : Json(nullptr), i);
    if (msg["content"].is_null() && *role != "assistant")
      throw ApiError(400, "'" + param + ".content' is required", param + ".content");
    out.push_back(std::move(msg));
  }
  return out;
}

// response_format: text (null), json_object (any object, or llama.cpp's "schema" beside it) or
// json_schema ({"json_schema": {"name", "schema", "strict"}}).
std::shared_ptr<const constrain::JsonConstraint> response_format_constraint(const Json& body) {
  const Json* rf = find_field(body, "response_format");
  if (!rf) return nullptr;
  const Json* type = rf->is_object() ? find_field(*rf, "type") : nullptr;
  if (!type || !type->is_string())
    throw ApiError(400, "'response_format' must be an object with a 'type'", "response_format");
  Json schema;
  if (*type == "text") return nullptr;
  if (*type == "json_object") {
    const Json* s = find_field(*rf, "schema");
    schema = s ? *s : Json{{"type", "object"}};
  } else if (*type == "json_schema") {
    const Json* js = find_field(*rf, "json_schema");
    const Json* s = js && js->is_object() ? find_field(*js, "schema") : nullptr;
    if (!s) throw ApiError(400, "'response_format.json_schema.schema' is required", "response_format.json_schema.schema");
    schema = *s;
  } else {
    throw ApiError(400, "'response_format.type' must be text, json_object or json_schema", "response_format.type");
  }
  try {
    return std::make_shared<const constrain::JsonConstraint>(schema);
  } catch (const InputError& e) {
    throw ApiError(400, std::string("'response_format': ") + e.what(), "response_format");
  }
}

// tool_choice: "auto" (the default: calls are parsed when the model writes them), "none" (not
// parsed), "required" (one call of any tool, forced by constrained decoding) or
// {"type": "function", "function": {"name": ...}} (that tool's call, forced).
void apply_tool_choice(const Json& body, GenerationRequest& req) {
  const Json* choice = find_field(body, "tool_choice");
  if (!choice || *choice == "auto") return;
  if (*choice == "none") {
    req.output_format.tool_names.clear();
    return;
  }
  std::string only;
  if (choice->is_object()) {
    const Json* fn = find_field(*choice, "function");
    const Json* name = fn && fn->is_object() ? find_field(*fn, "name") : nullptr;
    if (!name || !name->is_string())
      throw ApiError(400, "'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                     "tool_choice");
    only = name->get<std::string>();
  } else if (*choice != "required") {
    throw ApiError(400, "'tool_choice' must be none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                   "tool_choice");
  }
  if (req.constraint)
    throw ApiError(400, "'response_format' and a forced 'tool_choice' cannot both constrain the output", "tool_choice");
  force_tool_call(req, only, "tool_choice", "tool_choice");
}

// The fields chat and text completions share.
void parse_common(const Json& body, const ServedModel& model, GenerationRequest& req) {
  check_model_name(body, model, /*required=*/false);
  if (const auto n = integer_field(body, "n", 1, 128); n && *n != 1)
    unsupported("n", "must be 1: optiq generates one choice per request");
  if (const auto x = number_field(body, "presence_penalty", -2.0, 2.0)) req.sampling.presence_penalty = static_cast<float>(*x);
  if (const auto x = number_field(body, "frequency_penalty", -2.0, 2.0)) req.sampling.frequency_penalty = static_cast<float>(*x);
  if (const auto t = number_field(body, "temperature", 0.0, 2.0)) req.sampling.temperature = static_cast<float>(*t);
  if (const auto p = number_field(body, "top_p", 0.0, 1.0)) req.sampling.top_p = static_cast<float>(*p);
  if (const auto k = integer_field(body, "top_k", 0, 1 << 30)) req.sampling.top_k = static_cast<int32_t>(*k);
  if (const auto p = number_field(body, "min_p", 0.0, 1.0)) req.sampling.min_p = static_cast<float>(*p);
  if (const auto r = number_field(body, "repeat_penalty", 1e-3, 100.0)) req.sampling.repeat_penalty = static_cast<float>(*r);
  if (const auto s = integer_field(body, "seed", INT64_MIN, INT64_MAX)) req.seed = static_cast<uint32_t>(*s);
  req.stop = string_or_list_field(body, "stop", kMaxStop);
  req.stream = bool_field(body, "stream").value_or(false);
  if (const Json* so = find_field(body, "stream_options")) {
    if (!so->is_object()) throw ApiError(400, "'stream_options' must be an object", "stream_options");
    req.include_usage = bool_field(*so, "include_usage").value_or(false);
  }
}

}  // namespace

GenerationRequest parse_chat_completion(const Json& body, const ServedModel& model) {
  GenerationRequest req;
  req.chat = true;
  parse_common(body, model, req);
  req.messages = chat_messages(body);
  // max_completion_tokens replaced max_tokens in OpenAI's API; either is read, the new one first.
  req.max_tokens = integer_field(body, "max_completion_tokens", 1, INT32_MAX);
  if (!req.max_tokens) req.max_tokens = integer_field(body, "max_tokens", 1, INT32_MAX);
  if (const Json* tools = find_field(body, "tools")) {
    if (!tools->is_array()) throw ApiError(400, "'tools' must be a list of tool definitions", "tools");
    for (size_t i = 0; i < tools->size(); ++i) {
      const Json& t = (*tools)[i];
      const Json* fn = t.is_object() ? find_field(t, "function") : nullptr;
      const Json* name = fn && fn->is_object() ? find_field(*fn, "name") : nullptr;
      const std::string param = "tools[" + std::to_string(i) + "]";
      if (!name || !name->is_string() || name->get<std::string>().empty())
        throw ApiError(400, "'" + param + "' must be {\"type\": \"function\", \"function\": {\"name\": ...}}", param);
      if (const Json* params = find_field(*fn, "parameters"); params && !params->is_object())
        throw ApiError(400, "'" + param + ".function.parameters' must be a JSON Schema object", param + ".function.parameters");
      req.output_format.tool_names.push_back(name->get<std::string>());
    }
    if (!tools->empty()) req.tools = *tools;
  }
  if (const Json* fmt = find_field(body, "reasoning_format"))  // llama.cpp's: "none" keeps <think> in the text
    req.output_format.split_reasoning = !(fmt->is_string() && *fmt == "none");
  req.constraint = response_format_constraint(body);
  apply_tool_choice(body, req);
  const auto top_logprobs = integer_field(body, "top_logprobs", 0, 20);
  if (bool_field(body, "logprobs").value_or(false)) req.top_logprobs = static_cast<int>(top_logprobs.value_or(0));
  else if (top_logprobs) throw ApiError(400, "'top_logprobs' needs 'logprobs': true", "top_logprobs");
  if (const Json* kw = find_field(body, "chat_template_kwargs")) {
    if (!kw->is_object()) throw ApiError(400, "'chat_template_kwargs' must be an object", "chat_template_kwargs");
    for (const auto& [k, v] : kw->items()) req.template_vars.emplace_back(k, v);
  }
  return req;
}

GenerationRequest parse_completion(const Json& body, const ServedModel& model) {
  GenerationRequest req;
  req.chat = false;
  parse_common(body, model, req);
  const Json& prompt = required_field(body, "prompt");
  if (prompt.is_string()) {
    req.prompt = prompt.get<std::string>();
  } else if (prompt.is_array() && prompt.size() == 1 && prompt[0].is_string()) {
    req.prompt = prompt[0].get<std::string>();
  } else {
    throw ApiError(400, "'prompt' must be a string (or a list of one string; token lists and batches are not supported)",
                   "prompt");
  }
  if (req.prompt.empty()) throw ApiError(400, "'prompt' is empty", "prompt");
  req.output_format.split_reasoning = false;  // a completion's text is returned as written
  if (const Json* lp = find_field(body, "logprobs"); lp && !lp->is_null() && *lp != 0)
    unsupported("logprobs", "(the legacy completions form) is not implemented; chat completions have 'logprobs': true");
  if (bool_field(body, "echo").value_or(false)) unsupported("echo", "is not implemented");
  if (const Json* suffix = find_field(body, "suffix"); suffix && *suffix != "") unsupported("suffix", "is not implemented");
  // The legacy completions API generates 16 tokens when max_tokens is not given.
  req.max_tokens = integer_field(body, "max_tokens", 1, INT32_MAX).value_or(16);
  return req;
}

const char* openai_finish_reason(FinishReason r) {
  return r == FinishReason::Length ? "length" : r == FinishReason::ToolCalls ? "tool_calls" : "stop";
}

Json openai_usage(const GenerationResult& r) {
  // OpenAI counts cached tokens inside prompt_tokens and says how many in the details.
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", r.cached_tokens}}}};
}

namespace {

Json token_bytes(const std::string& token) {
  Json bytes = Json::array();
  for (const char c : token) bytes.push_back(static_cast<unsigned char>(c));
  return bytes;
}

}  // namespace

Json openai_logprobs(std::span<const TokenLogprob> logprobs) {
  Json content = Json::array();
  for (const TokenLogprob& t : logprobs) {
    Json top = Json::array();
    for (const auto& [token, logprob] : t.top)
      top.push_back({{"token", token}, {"logprob", logprob}, {"bytes", token_bytes(token)}});
    content.push_back({{"token", t.token}, {"logprob", t.logprob}, {"bytes", token_bytes(t.token)}, {"top_logprobs", top}});
  }
  return {{"content", content}, {"refusal", nullptr}};
}

Json chat_completion(const OpenAIResponseHead& head, const GenerationResult& r) {
  Json choice;
  choice["index"] = 0;
  const ModelOutput& out = r.output;
  Json message = {{"role", "assistant"}, {"content", out.calls.empty() || !out.content.empty() ? Json(out.content) : Json(nullptr)}};
  if (!out.reasoning.empty()) message["reasoning_content"] = out.reasoning;
  if (!out.calls.empty()) {
    Json calls = Json::array();
    for (const ToolCall& c : out.calls)
      calls.push_back({{"id", random_id("call_")}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments.dump()}}}});
    message["tool_calls"] = calls;
  }
  choice["message"] = message;
  choice["logprobs"] = r.logprobs ? openai_logprobs(*r.logprobs) : Json(nullptr);
  choice["finish_reason"] = openai_finish_reason(r.finish);
  return {{"id", head.id},          {"object", "chat.completion"},     {"created", head.created},
          {"model", head.model},    {"choices", Json::array({choice})}, {"usage", openai_usage(r)}};
}

Json chat_completion_chunk(const OpenAIResponseHead& head, const Json& delta, const char* finish_reason,
                           bool include_usage) {
  Json choice;
  choice["index"] = 0;
  choice["delta"] = delta;
  choice["logprobs"] = nullptr;
  choice["finish_reason"] = finish_reason ? Json(finish_reason) : Json(nullptr);
  Json j = {{"id", head.id},       {"object", "chat.completion.chunk"}, {"created", head.created},
            {"model", head.model}, {"choices", Json::array({choice})}};
  if (include_usage) j["usage"] = nullptr;
  return j;
}

std::vector<Json> tool_call_deltas(const std::vector<ToolCall>& calls) {
  std::vector<Json> deltas;
  for (size_t i = 0; i < calls.size(); ++i) {
    deltas.push_back({{"tool_calls", Json::array({{{"index", i}, {"id", random_id("call_")}, {"type", "function"},
                                                   {"function", {{"name", calls[i].name}, {"arguments", ""}}}}})}});
    deltas.push_back({{"tool_calls", Json::array({{{"index", i}, {"function", {{"arguments", calls[i].arguments.dump()}}}}})}});
  }
  return deltas;
}

Json chat_completion_usage_chunk(const OpenAIResponseHead& head, const GenerationResult& r) {
  return {{"id", head.id},       {"object", "chat.completion.chunk"}, {"created", head.created},
          {"model", head.model}, {"choices", Json::array()},          {"usage", openai_usage(r)}};
}

Json text_completion(const OpenAIResponseHead& head, const GenerationResult& r) {
  Json choice = {{"text", r.text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", openai_finish_reason(r.finish)}};
  return {{"id", head.id},       {"object", "text_completion"},      {"created", head.created},
          {"model", head.model}, {"choices", Json::array({choice})}, {"usage", openai_usage(r)}};
}

Json text_completion_chunk(const OpenAIResponseHead& head, const std::string& text, const char* finish_reason,
                           bool include_usage) {
  Json choice = {{"text", text}, {"index", 0}, {"logprobs", nullptr},
                 {"finish_reason", finish_reason ? Json(finish_reason) : Json(nullptr)}};
  Json j = {{"id", head.id},       {"object", "text_completion"}, {"created", head.created},
            {"model", head.model}, {"choices", Json::array({choice})}};
  if (include_usage) j["usage"] = nullptr;
  return j;
}

Json text_completion_usage_chunk(const OpenAIResponseHead& head, const GenerationResult& r) {
  return {{"id", head.id},       {"object", "text_completion"}, {"created", head.created},
          {"model", head.model}, {"choices", Json::array()},    {"usage", openai_usage(r)}};
}

Json models_list(const ServedModel& model, const std::vector<std::shared_ptr<const MountedAdapter>>& adapters) {
  Json m = {{"id", model.alias}, {"object", "model"}, {"created", model.created}, {"owned_by", "optiq"}};
  m["optiq"] = {{"file", model.file_name},          {"n_ctx", model.n_ctx},
                {"parallel", model.n_slots},        {"kv_cache_type_k", model.kv_type_k},
                {"kv_cache_type_v", model.kv_type_v}};
  Json data = Json::array({m});
  for (const auto& a : adapters)  // each adapter as a model of its own, for clients that only pick a name
    data.push_back({{"id", model.alias + "+" + a->name},
                    {"object", "model"},
                    {"created", model.created},
                    {"owned_by", "optiq"},
                    {"optiq", {{"base", model.alias}, {"lora_id", a->id}, {"lora_path", a->path}, {"lora_scale", a->scale}}}});
  return {{"object", "list"}, {"data", data}};
}

std::string openai_sse(const Json& chunk) {
  return "data: " + chunk.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n\n";
}

}  // namespace optiq::serve
