#include "kv/attention_inputs.h"

#include "engine/ops.h"
#include "engine/weight.h"

namespace optiq::kv {

std::vector<LayerAttentionInputs> capture_attention_inputs(const engine::Model& model,
                                                           std::span<const int32_t> tokens) {
  const engine::HParams& hp = model.hp;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t E = hp.n_embd, D = hp.head_dim;
  const engine::BlockInputCache blocks = engine::capture_block_inputs(model, tokens);
  const float* freq_factors = model.rope_freqs.empty() ? nullptr : model.rope_freqs.data();
  std::vector<float> normed(static_cast<size_t>(n * E));
  std::vector<LayerAttentionInputs> out(static_cast<size_t>(hp.n_layer));
  for (int64_t il = 0; il < hp.n_layer; ++il) {
    const engine::Layer& L = model.layers[static_cast<size_t>(il)];
    const bool swa = hp.swa_layers[static_cast<size_t>(il)];
    const float base = swa ? hp.rope_freq_base_swa : hp.rope_freq_base;
    const float scale = swa ? 1.0f : hp.rope_freq_scale;
    LayerAttentionInputs& a = out[static_cast<size_t>(il)];
    a.q.resize(static_cast<size_t>(n * hp.n_head * D));
    a.k.resize(static_cast<size_t>(n * hp.n_head_kv * D));
    a.v.resize(a.k.size());
    engine::rms_norm(blocks.inputs[static_cast<size_t>(il)].data(), L.attn_norm.data(), n, E, hp.rms_eps,
                     normed.data());
    engine::matmul(L.wq, normed.data(), n, a.q.data());
    engine::matmul(L.wk, normed.data(), n, a.k.data());
    engine::matmul(L.wv, normed.data(), n, a.v.data());
    if (!L.attn_q_norm.empty())
      engine::rms_norm(a.q.data(), L.attn_q_norm.data(), n * hp.n_head, D, hp.rms_eps, a.q.data());
    if (!L.attn_k_norm.empty())
      engine::rms_norm(a.k.data(), L.attn_k_norm.data(), n * hp.n_head_kv, D, hp.rms_eps, a.k.data());
    for (int64_t t = 0; t < n; ++t) {
      engine::rope(hp.rope_type, a.q.data() + t * hp.n_head * D, hp.n_head, D, hp.n_rot, t, base, scale,
                   freq_factors);
      engine::rope(hp.rope_type, a.k.data() + t * hp.n_head_kv * D, hp.n_head_kv, D, hp.n_rot, t, base, scale,
                   freq_factors);
    }
  }
  return out;
}

}  // namespace optiq::kv
