// Attention that reads a layer's KV cache as stored, for layers whose keys or values are in
// ggml block types (Q8_0 ... IQ4_NL): no dequantized copy of the cache is made. The numerics are
// those of llama.cpp's CPU flash attention (ggml_compute_forward_flash_attn_ext_f16_one_chunk),
// which llama.cpp needs for a quantized V cache:
//   - each query head is converted once to the vec_dot type of K's storage (Q8_0 for Q8_0,
//     Q5_0, Q4_0 and IQ4_NL; Q8_1 for Q4_1 and Q5_1; F16 for F16; F32 for F32), and every score
//     is ggml's block dot product of the stored key row with it, times the scale;
//   - the softmax is online in f32 (running maximum M and sum S, expf), and each value row is
//     dequantized to f32 and accumulated with fused multiply-adds into an f32 sum that is
//     rescaled when the maximum grows; the output is that sum times 1/S.
#pragma once

#include <cstdint>

#include "engine/kv_cache.h"

namespace optiq::engine {

// Causal grouped-query attention of n_tokens new tokens at positions pos0 .. pos0+n_tokens-1
// over the cached positions 0 .. (own position), or only the last `window` of them when
// window > 0, with the same shapes and meaning as causal_attention (ops.h):
//   q:   [n_tokens, n_head, head_dim] (rotated, and Hadamard-transformed when kv.k_rotation())
//   out: [n_tokens, n_head, head_dim] (in the values' Hadamard basis when kv.v_rotation())
// kv must hold positions 0 .. pos0+n_tokens-1. (token, head) pairs are spread over the engine's
// threads when the work is large enough.
void causal_attention_cached(const float* q, const LayerKVCache& kv, int64_t n_tokens, int64_t pos0,
                             int64_t n_head, float scale, int64_t window, float* out);

}  // namespace optiq::engine
