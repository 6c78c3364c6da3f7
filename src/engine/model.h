// The decoder-only transformers the engine runs, as llama.cpp's graphs compute them
// (src/models/{llama,qwen2,qwen3,gemma3}.cpp there):
//   llama   RMSNorm, q/k/v (optional biases), rope NORM (Llama 3 frequency factors), causal
//           grouped-query attention, output projection, RMSNorm, SwiGLU feed-forward.
//   qwen2   llama with q/k/v biases and rope NEOX.
//   qwen3   per-head RMSNorm of q and k before rope NEOX, no biases.
//   gemma3  embeddings scaled by sqrt(n_embd), per-head q/k RMSNorm, norms after attention and
//           feed-forward as well as before, GeGLU (tanh GELU) feed-forward, sliding-window local
//           layers with their own rope base interleaved with global layers, tied output.
// Hyperparameters come from llama.cpp's GGUF keys (<arch>.*), read from a GGUF or from an HF
// folder through ModelSource.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/low_rank.h"
#include "engine/ops.h"
#include "engine/weight.h"
#include "model/arch.h"
#include "model/model_source.h"

namespace optiq::engine {

enum class FfnActivation { SiLU, GeluTanh };

struct HParams {
  Arch arch = Arch::Llama;
  int64_t n_vocab = 0;       // vocabulary size (rows of token_embd)
  int64_t n_embd = 0;        // model width (<arch>.embedding_length)
  int64_t n_layer = 0;       // transformer blocks (<arch>.block_count)
  int64_t n_ff = 0;          // feed-forward width (<arch>.feed_forward_length)
  int64_t n_head = 0;        // query heads (<arch>.attention.head_count)
  int64_t n_head_kv = 0;     // key/value heads (<arch>.attention.head_count_kv; = n_head if absent)
  int64_t head_dim = 0;      // per-head width (<arch>.attention.key_length; n_embd / n_head)
  int64_t n_rot = 0;         // rotated dims per head (<arch>.rope.dimension_count; = head_dim)
  int64_t n_ctx_train = 0;   // trained context (<arch>.context_length)
  float rms_eps = 1e-5f;     // <arch>.attention.layer_norm_rms_epsilon
  RopeType rope_type = RopeType::Norm;
  float rope_freq_base = 10000.0f;  // <arch>.rope.freq_base
  float rope_freq_scale = 1.0f;     // 1 / <arch>.rope.scaling.factor for "linear" scaling
  float attn_scale = 0.0f;          // multiplies q·k: 1/sqrt(head_dim) (gemma3 27B: 1/sqrt(n_embd/n_head))
  float embd_scale = 1.0f;          // multiplies token embeddings: sqrt(n_embd) for gemma3
  float logit_softcap = 0.0f;       // <arch>.final_logit_softcapping: cap*tanh(logit/cap), 0 = off
  FfnActivation ffn_act = FfnActivation::SiLU;
  int64_t n_swa = 0;                // sliding window of local layers (<arch>.attention.sliding_window), 0 = none
  std::vector<bool> swa_layers;     // [n_layer] true where the layer attends through the window
  float rope_freq_base_swa = 10000.0f;  // rope base of the local layers (<arch>.rope.freq_base_swa)
};

struct Layer {
  std::vector<float> attn_norm;       // [n_embd]
  std::vector<float> attn_q_norm;     // [head_dim] per-head q RMSNorm (qwen3, gemma3), or empty
  std::vector<float> attn_k_norm;     // [head_dim] per-head k RMSNorm (qwen3, gemma3), or empty
  Weight wq;                          // [n_head * head_dim, n_embd] (n_out, n_in)
  Weight wk;                          // [n_head_kv * head_dim, n_embd]
  Weight wv;                          // [n_head_kv * head_dim, n_embd]
  Weight wo;                          // [n_embd, n_head * head_dim]
  std::vector<float> attn_post_norm;  // [n_embd] norm of the attention output (gemma3), or empty
  std::vector<float> ffn_norm;        // [n_embd]
  Weight ffn_gate;                    // [n_ff, n_embd]
  Weight ffn_up;                      // [n_ff, n_embd]
  Weight ffn_down;                    // [n_embd, n_ff]
  std::vector<float> ffn_post_norm;   // [n_embd] norm of the feed-forward output (gemma3), or empty
};

struct Model {
  HParams hp;
  Weight token_embd;               // [n_vocab, n_embd]: one row per token, read with get_rows
  std::vector<Layer> layers;       // [n_layer]
  std::vector<float> output_norm;  // [n_embd]
  Weight output;                   // [n_vocab, n_embd], or empty (n_out 0) when tied to token_embd
  std::vector<float> rope_freqs;   // [n_rot / 2] per-frequency divisors (Llama 3), or empty
  // Adapters every pass applies unless forward_batch is given a set per sequence (optiq's
  // commands' --lora); each targets a weight in `layers` and points into memory the caller
  // keeps alive. Empty: the base model.
  std::vector<LowRankDelta> deltas;

  // The vocabulary projection: output, or token_embd itself for a model that ties them (one
  // copy in memory, and swapping token_embd changes both ends, as quantizing it does).
  const Weight& head() const { return output.n_out ? output : token_embd; }
};

// Loads a llama, qwen2, qwen3 or gemma3 model from a GGUF or Hugging Face source, weights kept in
// their stored type (see vec_dot_supported in quant/dot.h). Throws InputError for another
// architecture, a missing or misshapen tensor, an unsupported tensor type or rope scaling.
Model load_model(const ModelSource& src);

// A KV cache sized for this model: n_ctx positions in every layer, stored as `config` says
// (config.layers empty: F32 everywhere; else one entry per layer). Throws InputError when n_ctx
// exceeds the trained context (rope positions beyond it are untrained), or a block type does
// not fit the head width.
KVCache make_kv_cache(const Model& model, int64_t n_ctx, const KVCacheConfig& config = {});
// The same with one type for keys and values of each layer ([n_layer], or empty: F32).
KVCache make_kv_cache(const Model& model, int64_t n_ctx, std::span<const KVType> types);

// Called with the input of every weight matmul of a forward pass: w is the weight about to be
// applied, x its input [n_tokens, w.n_in]. The importance matrix accumulates these.
using MatmulObserver = std::function<void(const Weight& w, const float* x, int64_t n_tokens)>;

// Runs `tokens` (one batch: prefill when several, decode when one) at positions
// cache.n_past .. cache.n_past + tokens.size() - 1, appending their keys and values to the
// cache. Writes logits: [tokens.size(), n_vocab] when all_logits, else [1, n_vocab] for the
// last token only. Throws InputError for an empty batch, a token id outside the vocabulary or
// a batch that does not fit in the cache. `observer`, when set, sees every matmul input.
void forward(const Model& model, KVCache& cache, std::span<const int32_t> tokens,
             bool all_logits, float* logits, const MatmulObserver& observer = {});

// Several sequences in one pass, each in its own cache (continuous batching: the decode steps of
// all of a server's active requests): tokens[i] runs at positions caches[i]->n_past onwards and
// is appended there. The matmuls see all rows as one batch, so each weight row is read once per
// pass. While the batch is small enough for matmul's few-token path (weight.h: under 64 rows
// for block types, 4 for float weights) every row goes through the dot
// kernels of a pass of its own, and the logits equal forward()'s bit for bit. Writes logits
// [caches.size(), n_vocab]: each sequence's last token. `deltas`, when not empty, holds each
// sequence's adapters ([caches.size()], used instead of model.deltas): the base product is
// computed once for the whole batch, each delta only on its sequence's rows. Throws InputError
// as forward() does, std::invalid_argument for mismatched spans or a cache given twice.
void forward_batch(const Model& model, std::span<KVCache* const> caches, std::span<const std::span<const int32_t>> tokens,
                   float* logits, std::span<const LowRankDeltas> deltas = {});

// --- Re-running part of the model with one weight replaced (sensitivity measurement) ---------

// The residual stream entering every block for one token sequence evaluated from position 0:
// inputs[il] is block il's input, inputs[n_layer] the last block's output (before the final
// norm). Each is [n_tokens, n_embd].
struct BlockInputCache {
  int64_t n_tokens = 0;
  int64_t n_seq = 1;                       // equal-length sequences laid end to end in tokens
  std::vector<int32_t> tokens;             // [n_tokens] the sequence(s)
  std::vector<std::vector<float>> inputs;  // [n_layer + 1][n_tokens * n_embd]
};

// Runs `tokens` through the whole model once and keeps every block's input.
// With n_seq > 1, `tokens` is n_seq independent sequences of equal length, each evaluated from
// position 0 (one batch for the matmuls: faster than one sequence at a time).
BlockInputCache capture_block_inputs(const Model& model, std::span<const int32_t> tokens, int64_t n_seq = 1);

// One weight of the model multiplied as another: `replacement` must have the shape of
// `original`, which must be a weight of the model (compared by address).
struct WeightSwap {
  const Weight* original = nullptr;
  const Weight* replacement = nullptr;
};

// The block that owns a weight (its index in model.layers; 0 for token_embd, which feeds block
// 0 and, when tied, the head too), or n_layer for the output head.
// Throws std::invalid_argument for a weight that is not the model's.
int64_t block_of(const Model& model, const Weight& w);

// Logits [n_tokens, n_vocab] of the cached sequence with `swap` applied, recomputing only the
// blocks from first_block on (first_block = n_layer: the output head only) from the cached
// inputs. Equals a full forward with the swap when first_block <= block_of(swap.original).
// The re-run blocks store their keys and values as `kv` says (default: F32, as the cached
// inputs were made); the blocks before first_block keep their F32 cache.
void forward_from_block(const Model& model, const BlockInputCache& cache, int64_t first_block,
                        const WeightSwap& swap, float* logits, const KVCacheConfig& kv = {});

}  // namespace optiq::engine
