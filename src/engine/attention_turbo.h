// Attention for layers whose keys or values (or both) are TurboQuant rows (kv_cache.h). Keys
// are compared in K's rotated space (<q, k> = <R_k q, R_k k>; with the key statistics of
// kv_cache.h, <R_k (q / a), codes of a * (k - m)> + <q, m>) and values summed in V's rotated
// space (sum_p w_p R_v v_p = R_v sum_p w_p v_p), so each query head is rotated once per step
// and each output head rotated back once; the other side may be any cache type (F32, F16, a
// ggml block type), read as floats.
//
// Two ways, by batch size:
//   decode (fewer than kAttentionGemmTokens tokens): every score is read straight from a key's
//     codes and norm (TurboQuantizer::score), the softmax is exact (all scores, then the
//     maximum), and each value row is added from its codes (TurboQuantizer::accumulate) into
//     the rotated output. Nothing is dequantized.
//   prefill (more tokens): the visible rows are decoded once per batch into rotated-space
//     floats, and the float attention (ops.h, two sgemm per head) runs on them. The results
//     are the same numbers up to f32 summation order.
#pragma once

#include <cstdint>

#include "engine/kv_cache.h"

namespace optiq::engine {

// Causal grouped-query attention of n_tokens new tokens at positions pos0 .. pos0+n_tokens-1
// with the shapes and meaning of causal_attention (ops.h):
//   q:   [n_tokens, n_head, head_dim] (Hadamard-transformed when kv.k_rotation(), i.e. a block K)
//   out: [n_tokens, n_head, head_dim] (in the values' Hadamard basis when kv.v_rotation())
// kv must have a TurboQuant K or V (has_turbo()) and hold positions 0 .. pos0+n_tokens-1.
void causal_attention_turbo(const float* q, const LayerKVCache& kv, int64_t n_tokens, int64_t pos0,
                            int64_t n_head, float scale, int64_t window, float* out);

}  // namespace optiq::engine
