// The OpenAI front end: POST /v1/chat/completions, POST /v1/completions and GET /v1/models.
// Parsing checks every field the server reads and turns the body into a GenerationRequest
// (ApiError 400 naming the field otherwise); the builders make the response objects and the
// stream's chunks as the OpenAI API reference shows them.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "serve/api_common.h"
#include "serve/generation_request.h"

namespace optiq::serve {

GenerationRequest parse_chat_completion(const Json& body, const ServedModel& model);
GenerationRequest parse_completion(const Json& body, const ServedModel& model);

// "stop" or "length" (a cancelled request has no finish reason to report).
const char* openai_finish_reason(FinishReason r);
Json openai_usage(const GenerationResult& r);

// One generation's identity in every object of its response.
struct OpenAIResponseHead {
  std::string id;     // "chatcmpl-..." or "cmpl-..."
  std::string model;  // the served model's alias
  int64_t created = 0;
};

Json chat_completion(const OpenAIResponseHead& head, const GenerationResult& r);
// A chat choice's "logprobs": {"content": [{token, logprob, bytes (the token's UTF-8 bytes as
// integers), top_logprobs: [{token, logprob, bytes}]}], "refusal": null}.
Json openai_logprobs(std::span<const TokenLogprob> logprobs);
// A "chat.completion.chunk": `delta` ({"role": ...} or {"content": ...} or {}), and
// finish_reason (nullptr: none yet). include_usage adds "usage": null, as OpenAI does.
Json chat_completion_chunk(const OpenAIResponseHead& head, const Json& delta, const char* finish_reason, bool include_usage);
// The deltas that stream tool calls, two per call as OpenAI sends them: {index, id, type,
// function: {name, arguments: ""}}, then {index, function: {arguments}}.
std::vector<Json> tool_call_deltas(const std::vector<ToolCall>& calls);
// The usage chunk that ends a stream with include_usage: no choices.
Json chat_completion_usage_chunk(const OpenAIResponseHead& head, const GenerationResult& r);

Json text_completion(const OpenAIResponseHead& head, const GenerationResult& r);
Json text_completion_chunk(const OpenAIResponseHead& head, const std::string& text, const char* finish_reason,
                           bool include_usage);
Json text_completion_usage_chunk(const OpenAIResponseHead& head, const GenerationResult& r);

// GET /v1/models: the one served model, with optiq's details (file, context, KV cache types).
Json models_list(const ServedModel& model, const std::vector<std::shared_ptr<const MountedAdapter>>& adapters);

// One server-sent event of an OpenAI stream: "data: <json>\n\n".
std::string openai_sse(const Json& chunk);
inline constexpr const char* kOpenAIStreamEnd = "data: [DONE]\n\n";

}  // namespace optiq::serve
