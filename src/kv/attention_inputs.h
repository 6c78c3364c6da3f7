// The queries, keys and values a model's attention layers see for one token sequence, recomputed
// from the engine's public pieces (block inputs, weights, norms, rope) exactly as a forward pass
// computes them. TurboQuant's tests and benchmark measure attention error on these real
// activations instead of on synthetic vectors.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/model.h"

namespace optiq::kv {

struct LayerAttentionInputs {
  std::vector<float> q;  // [n_tokens, n_head, head_dim] after q norm and rope
  std::vector<float> k;  // [n_tokens, n_head_kv, head_dim] after k norm and rope: what the cache stores
  std::vector<float> v;  // [n_tokens, n_head_kv, head_dim]
};

// One entry per layer ([n_layer]) for `tokens` evaluated from position 0.
std::vector<LayerAttentionInputs> capture_attention_inputs(const engine::Model& model,
                                                           std::span<const int32_t> tokens);

}  // namespace optiq::kv
