// The llama architecture (Llama 2/3.x, TinyLlama, SmolLM2, stories260K) as the engine runs it:
// hyperparameters from llama.cpp's GGUF keys, weights kept in their stored type, and the
// forward pass llama.cpp's graph computes (src/models/llama.cpp there): RMSNorm, q/k/v
// projections, rope (LLAMA_ROPE_TYPE_NORM), causal grouped-query attention, output projection,
// RMSNorm, SwiGLU feed-forward, final RMSNorm and the vocabulary projection.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/weight.h"
#include "model/model_source.h"

namespace optiq::engine {

struct HParams {
  int64_t n_vocab = 0;       // vocabulary size (rows of token_embd)
  int64_t n_embd = 0;        // model width (llama.embedding_length)
  int64_t n_layer = 0;       // transformer blocks (llama.block_count)
  int64_t n_ff = 0;          // feed-forward width (llama.feed_forward_length)
  int64_t n_head = 0;        // query heads (llama.attention.head_count)
  int64_t n_head_kv = 0;     // key/value heads (llama.attention.head_count_kv; = n_head if absent)
  int64_t head_dim = 0;      // per-head width (llama.attention.key_length; n_embd / n_head)
  int64_t n_rot = 0;         // rotated dims per head (llama.rope.dimension_count; = head_dim)
  int64_t n_ctx_train = 0;   // trained context (llama.context_length)
  float rms_eps = 1e-5f;     // llama.attention.layer_norm_rms_epsilon
  float rope_freq_base = 10000.0f;  // llama.rope.freq_base
  float rope_freq_scale = 1.0f;     // 1 / llama.rope.scaling.factor for "linear" scaling
};

struct Layer {
  std::vector<float> attn_norm;  // [n_embd]
  Weight wq;                     // [n_head * head_dim, n_embd] (n_out, n_in)
  Weight wk;                     // [n_head_kv * head_dim, n_embd]
  Weight wv;                     // [n_head_kv * head_dim, n_embd]
  Weight wo;                     // [n_embd, n_head * head_dim]
  std::vector<float> ffn_norm;   // [n_embd]
  Weight ffn_gate;               // [n_ff, n_embd]
  Weight ffn_up;                 // [n_ff, n_embd]
  Weight ffn_down;               // [n_embd, n_ff]
};

struct Model {
  HParams hp;
  Weight token_embd;               // [n_vocab, n_embd]: one row per token, read with get_rows
  std::vector<Layer> layers;  // [n_layer]
  std::vector<float> output_norm;  // [n_embd]
  Weight output;                   // [n_vocab, n_embd]; token_embd's copy when the model ties them
  std::vector<float> rope_freqs;   // [n_rot / 2] per-frequency divisors (Llama 3), or empty
};

// Loads a llama-architecture model from a GGUF or Hugging Face source (weight types: see
// vec_dot_supported in quant/dot.h).
// Throws InputError for another architecture, a missing or misshapen tensor, an unsupported
// tensor type or rope scaling.
Model load_model(const ModelSource& src);

// A KV cache sized for this model: n_ctx positions in every layer.
KVCache make_kv_cache(const Model& model, int64_t n_ctx);

// Called with the input of every weight matmul of a forward pass: w is the weight about to be
// applied, x its input [n_tokens, w.n_in]. The importance matrix accumulates these.
using MatmulObserver = std::function<void(const Weight& w, const float* x, int64_t n_tokens)>;

// Runs `tokens` (one batch: prefill when several, decode when one) at positions
// cache.n_past .. cache.n_past + tokens.size() - 1, appending their keys and values to the
// cache. Writes logits: [tokens.size(), n_vocab] when all_logits, else [1, n_vocab] for the
// last token only. Throws InputError for an empty batch, a token id outside the vocabulary or
// a batch that does not fit in the cache.
// `observer`, when set, sees every matmul input (see MatmulObserver).
void forward(const Model& model, KVCache& cache, std::span<const int32_t> tokens,
             bool all_logits, float* logits, const MatmulObserver& observer = {});

}  // namespace optiq::engine
