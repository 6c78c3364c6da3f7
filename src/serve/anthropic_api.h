// The Anthropic front end: POST /v1/messages and POST /v1/messages/count_tokens. Parsing checks
// the fields the server reads and maps a Messages request onto a GenerationRequest (system
// first as a system message, text blocks joined, tool_use and tool_result blocks as OpenAI-style
// tool calls and tool messages, tools in OpenAI's function shape for the chat template); the
// builders make the Message object and the stream's events as Anthropic's API
// reference shows them.
#pragma once

#include <string>

#include "serve/api_common.h"
#include "serve/generation_request.h"

namespace optiq::serve {

GenerationRequest parse_messages(const Json& body, const ServedModel& model);
// count_tokens takes what /v1/messages takes, without max_tokens.
GenerationRequest parse_count_tokens(const Json& body, const ServedModel& model);

// "end_turn", "stop_sequence", "tool_use" or "max_tokens".
const char* anthropic_stop_reason(FinishReason r);

struct AnthropicResponseHead {
  std::string id;     // "msg_..."
  std::string model;  // the served model's alias
};

Json anthropic_message(const AnthropicResponseHead& head, const GenerationResult& r);

// The stream's events, in order: message_start, ping, the content blocks (content_block_start,
// content_block_delta per piece, content_block_stop; see AnthropicContentStream), message_delta
// (stop reason, output tokens), message_stop. Each is "event: <type>\ndata: <json>\n\n".
// `input_tokens`: the whole prompt; `cached_tokens` of them came from the prompt cache.
std::string anthropic_message_start(const AnthropicResponseHead& head, int64_t input_tokens, int64_t cached_tokens = 0);
std::string anthropic_ping();

// A streamed message's content blocks, each opened when its first content arrives and closed
// when another kind starts: a thinking block (thinking_delta), a text block (text_delta), then
// one tool_use block per call (its input in one input_json_delta). Blocks are numbered from 0.
class AnthropicContentStream {
 public:
  std::string thinking(const std::string& text);
  std::string text(const std::string& text);
  std::string tool_use(const ToolCall& call);
  // Closes the open block; a message that had none gets one empty text block, as Anthropic
  // sends for an empty answer.
  std::string close();

 private:
  std::string open(const char* type, const Json& block);
  std::string close_open();
  std::string delta(const char* type, const char* delta_type, const char* field, const std::string& text);
  int index_ = -1;              // the latest block's index
  const char* open_ = nullptr;  // its type while it is open
};

std::string anthropic_message_delta(const GenerationResult& r);
std::string anthropic_message_stop();
// An error after the stream began: "event: error" with the error shape of api_errors.h.
std::string anthropic_stream_error(const std::string& error_json);

}  // namespace optiq::serve
