// A model as the evaluation tasks use it: optiq's engine and the model's tokenizer and chat
// template, with greedy generation and continuation log-probabilities.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "engine/model.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace optiq::eval {

struct Generation {
  std::string text;     // the continuation, cut before the first stop sequence
  int64_t n_prompt = 0;    // prompt tokens
  int64_t n_generated = 0; // tokens generated
  std::string stopped_by;  // "eos", "stop sequence", "max tokens", "context"
};

class EvalModel {
 public:
  // `path`: a resolved model path (.gguf or HF folder). n_ctx: the KV cache size (0: the trained
  // context, at most 4096).
  EvalModel(const std::string& path, int64_t n_ctx);

  const std::string& path() const { return path_; }
  // How every KV cache this model makes is stored (default: F32 in every layer).
  const engine::KVCacheConfig& kv_config() const { return kv_; }
  void set_kv_config(engine::KVCacheConfig kv) { kv_ = std::move(kv); }
  // Adapters applied to every pass (engine::Model::deltas); the caller keeps their factors alive.
  void set_deltas(std::vector<engine::LowRankDelta> deltas) { model_.deltas = std::move(deltas); }
  const engine::Model& model() const { return model_; }
  const Tokenizer& tokenizer() const { return tok_; }
  int64_t n_ctx() const { return n_ctx_; }

  // Whether the model has a chat template, and the prompt it makes of one user turn (and tools).
  bool has_chat_template() const { return tmpl_.has_value(); }
  std::string chat(const std::string& user, const nlohmann::ordered_json& tools = nullptr) const;
  // A whole conversation (OpenAI-style messages), the assistant's turn opened.
  std::string chat_messages(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools) const;
  // Whether the chat template's source reads a variable (e.g. "tools").
  bool template_mentions(const std::string& word) const;

  // Tokens of a prompt as the engine will see it (BOS added as the vocabulary asks, special
  // tokens parsed).
  std::vector<int32_t> encode(const std::string& prompt) const;
  int64_t count_tokens(const std::string& prompt) const { return static_cast<int64_t>(encode(prompt).size()); }

  // Greedy decoding (largest logit, lowest id on ties) of at most max_tokens tokens after
  // `prompt`, stopping at end of text, at a stop sequence in the decoded continuation or at the
  // end of the context. A prompt longer than the context keeps its last tokens (left truncation,
  // as lm-evaluation-harness does).
  Generation generate(const std::string& prompt, int64_t max_tokens, const std::vector<std::string>& stops) const;

  // log p(continuation | context), the continuation tokenized on its own after the context's
  // tokens (lm-evaluation-harness's loglikelihood requests); a context too long for n_ctx keeps
  // its last tokens.
  double continuation_logprob(const std::string& context, const std::string& continuation) const;
  // The same for several continuations of one context, sharing its forward pass when each
  // continuation is a single token.
  std::vector<double> continuation_logprobs(const std::string& context, const std::vector<std::string>& continuations) const;

 private:
  std::string path_;
  engine::Model model_;
  Tokenizer tok_;
  std::optional<ChatTemplate> tmpl_;
  int64_t n_ctx_ = 0;
  engine::KVCacheConfig kv_;  // storage of the KV caches (--cache-type-k/-v, --kv-config)
};

}  // namespace optiq::eval
