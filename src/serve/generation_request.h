// What both APIs' requests become once parsed and checked, and what a generation returns. The
// HTTP layer turns an OpenAI or Anthropic body into a GenerationRequest (openai_api.h,
// anthropic_api.h), the Generator runs it (generator.h), and the result is written back in the
// request's API.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "constrain/json_constraint.h"
#include "engine/sampling.h"
#include "serve/adapter_registry.h"
#include "serve/model_output.h"

namespace optiq::serve {

struct GenerationRequest {
  // A chat request renders `messages` (OpenAI-style: role + string content) and `tools` through
  // the model's chat template with the assistant's turn opened; a completion continues `prompt`.
  bool chat = true;
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  nlohmann::ordered_json tools;  // null: the template sees tools = None
  std::vector<std::pair<std::string, nlohmann::ordered_json>> template_vars;  // chat_template_kwargs
  std::string prompt;

  std::optional<int64_t> max_tokens;  // tokens to generate at most; unset: until the context is full
  // Unset fields keep the APIs' defaults: temperature 1 and top_p 1 (off) as OpenAI and
  // Anthropic document them; top_k 40, min_p 0.05 and repeat_penalty 1 as optiq generate.
  engine::SamplingParams sampling = default_sampling();
  std::optional<uint32_t> seed;    // unset: a random seed
  std::vector<std::string> stop;   // stop sequences; the text stops before the first one
  bool stream = false;
  bool include_usage = false;      // OpenAI stream_options.include_usage: a final usage chunk
  // OpenAI chat logprobs: set (0..20) when each generated token's log-probability is wanted,
  // with this many most likely alternatives (top_logprobs).
  std::optional<int> top_logprobs;
  // Constrained decoding (response_format json_object / json_schema, tool_choice required or
  // named): every token keeps the output a prefix of a document this accepts, and generation
  // ends when it is one. Null: free text.
  std::shared_ptr<const constrain::JsonConstraint> constraint;
  // How the output splits into reasoning, text and tool calls (model_output.h). tool_names
  // empty: no call parsing (no tools, or tool_choice "none"). Generator::tokenize_prompt sets
  // reasoning_open from the rendered prompt.
  OutputFormat output_format;
  // --python-tool added the "python" tool to this request: the server runs its calls itself.
  bool server_python = false;
  // LoRA adapters ("lora": [{"id", "scale"}] and "model": "BASE+NAME"); empty: the base model.
  std::vector<AdapterUse> adapters;

  static engine::SamplingParams default_sampling() {
    engine::SamplingParams p;
    p.temperature = 1.0f;
    p.top_p = 1.0f;
    return p;
  }
};

// One generated token's log-probabilities: log-softmax of the model's raw logits [n_vocab],
// before the penalty, the filters and the temperature (what OpenAI reports), in nats.
struct TokenLogprob {
  std::string token;  // the token decoded alone (special tokens kept): bytes, maybe part of a UTF-8 character
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;  // [top_logprobs] (token, logprob), most likely first
};

enum class FinishReason {
  EndOfText,     // the model ended its turn (EOS/EOT): OpenAI "stop", Anthropic "end_turn"
  StopSequence,  // a stop sequence appeared: OpenAI "stop", Anthropic "stop_sequence"
  ToolCalls,     // the model ended its turn with tool calls: OpenAI "tool_calls", Anthropic "tool_use"
  Length,        // max_tokens reached or the context is full: "length" / "max_tokens"
  Cancelled,     // the client went away mid-stream; nothing is sent
};

struct GenerationResult {
  std::string text;           // what the client sees: stop sequences and special tokens left out
  FinishReason finish = FinishReason::EndOfText;
  std::string stop_sequence;  // the stop sequence that ended it (StopSequence only)
  int64_t prompt_tokens = 0;
  int64_t cached_tokens = 0;  // of prompt_tokens, those the slot's prompt cache already held
  int64_t completion_tokens = 0;
  // When the first and the latest generated token were sampled (unset when none was).
  std::optional<std::chrono::steady_clock::time_point> first_token_at;
  std::chrono::steady_clock::time_point last_token_at;
  // [completion_tokens] when the request has top_logprobs (EOS/EOT not included), else unset.
  std::optional<std::vector<TokenLogprob>> logprobs;
  // A chat request's text split into reasoning, answer text and tool calls (model_output.h).
  ModelOutput output;
};

}  // namespace optiq::serve
