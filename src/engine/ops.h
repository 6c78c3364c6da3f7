// The numeric building blocks of a transformer forward pass, as plain loops over f32. Each
// follows the semantics of the matching ggml operation llama.cpp uses (named below), so that
// the engine's logits agree with llama.cpp's.
#pragma once

#include <cstdint>

namespace optiq::engine {

// ggml_rms_norm followed by ggml_mul with the norm weight:
// out[t, i] = x[t, i] / sqrt(mean_i(x[t, i]^2) + eps) * w[i].
// x, out: [n_tokens, n]; w: [n]. out may alias x.
void rms_norm(const float* x, const float* w, int64_t n_tokens, int64_t n, float eps, float* out);

// How rotary embedding pairs up a head's dimensions (llama.cpp's rope types).
//   Norm: adjacent pairs (x[2i], x[2i+1]) — LLAMA_ROPE_TYPE_NORM (llama).
//   Neox: split halves (x[i], x[i + n_rot/2]) — LLAMA_ROPE_TYPE_NEOX (qwen2, qwen3, gemma3).
enum class RopeType { Norm, Neox };

// Rotary position embedding: pair i (i < n_rot / 2) of every head is rotated by the angle
//   theta_i = freq_scale * pos * freq_base^(-2i / n_rot) / freq_factors[i]
// (freq_factors may be null: all 1); dimensions from n_rot on pass through unchanged.
// x: [n_heads, head_dim] for one token at position `pos`, rotated in place.
// freq_factors: [n_rot / 2] or null.
void rope(RopeType type, float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
          float freq_base, float freq_scale, const float* freq_factors);

// The orthonormal Walsh-Hadamard transform (Sylvester order) of every consecutive `width`
// values of x [n], in place; n a multiple of width, width a power of two. Computed as ggml's
// CPU fast transform (ggml_compute_forward_fwht, which llama.cpp runs on queries, keys and
// values of a quantized cache): scaled by 1/sqrt(width) first, then butterflies (u+v, u-v) of
// span 1, 2, 4, ... . The transform is its own inverse.
void hadamard_transform(float* x, int64_t n, int64_t width);

// y[i] += x[i] * a over [n] floats as fused multiply-adds (ggml_vec_mad_f32 on an FMA machine):
// AVX2+FMA code where the CPU has it, std::fma otherwise, the same results either way.
void mad(float* y, const float* x, float a, int64_t n);

// In-place softmax over x[0, n): max-subtracted, like ggml_soft_max.
void softmax(float* x, int64_t n);

// log_softmax over logits[0, n) into out[0, n) (out may alias logits); sums in double.
void log_softmax(const float* logits, int64_t n, float* out);

// Index of the largest value; the lowest index wins ties (llama.cpp's greedy sampler).
int64_t argmax(const float* x, int64_t n);

// SwiGLU's gating: gate[i] = silu(gate[i]) * up[i], silu(v) = v / (1 + exp(-v)). [n] each.
void swiglu(float* gate, const float* up, int64_t n);

// GeGLU's gating with the tanh approximation of GELU: gate[i] = gelu(gate[i]) * up[i]. [n] each.
// Computed as ggml's CPU backend does (its GGML_GELU_FP16 table): the input rounded to f16,
// gelu of that, rounded to f16 again; inputs beyond +-10 take the asymptotes 0 and x.
void geglu(float* gate, const float* up, int64_t n);

// The query head -> key/value head map of grouped-query attention: n_head query heads share
// n_head_kv key/value heads in contiguous groups of n_head / n_head_kv (ggml's broadcast in
// ggml_mul_mat). n_head must be a multiple of n_head_kv.
inline int64_t kv_head_of(int64_t head, int64_t n_head, int64_t n_head_kv) {
  return head / (n_head / n_head_kv);
}

// Causal grouped-query attention for n_tokens new tokens at positions pos0 .. pos0+n_tokens-1,
// attending to cached positions 0 .. (its own position) inclusive; with a sliding window
// (window > 0) only to the last `window` of them: position p sees p' when p - p' < window.
//   q:   [n_tokens, n_head, head_dim]      (already rotated)
//   k:   [n_ctx, n_head_kv, head_dim]      cache; rows 0 .. pos0+n_tokens-1 filled
//   v:   [n_ctx, n_head_kv, head_dim]      cache, same rows filled
//   out: [n_tokens, n_head, head_dim]
// Each score is scale * dot(q, k); softmax over the visible positions; out = sum weights * v.
// Batches of kAttentionGemmTokens tokens or more go through two sgemm calls per head (scores
// and output); smaller ones (decode) loop over (token, head) pairs. Either way the work is
// spread over the engine's threads when it is large enough.
inline constexpr int64_t kAttentionGemmTokens = 8;
// Threads for an attention of `work` multiply-adds (tokens × query heads × visible positions ×
// head width), shared by every cache layout: one below ~32K, where starting a parallel region
// costs about what the second thread saves.
int attention_threads(int64_t work);
void causal_attention(const float* q, const float* k, const float* v, int64_t n_tokens,
                      int64_t pos0, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                      float scale, int64_t window, float* out);

}  // namespace optiq::engine
