// A tiny random llama built in memory for KV cache tests: 3 layers with 64-wide heads, so the
// Hadamard rotation, the 32-value blocks and TurboQuant rows all apply (stories260K's heads are
// 8 wide).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "quant/quantize.h"

namespace optiq::test {

// n values drawn from N(0, spread²), the same for the same seed.
inline std::vector<float> random_values(size_t n, uint32_t seed, float spread = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, spread);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

struct TinyLlamaShape {
  int64_t n_vocab = 40;
  int64_t n_embd = 128;
  int64_t n_ff = 96;
  int64_t n_head = 4;
  int64_t n_head_kv = 2;
  uint32_t seed = 10;  // of the first weight; each next weight takes the next seed
  GgmlType weight_type = GgmlType::F32;  // of every weight matrix (token_embd, the tied head, too)
};

// Weights N(0, 1/n_in), unit norms, no sliding window; head_dim 64.
inline engine::Model tiny_llama(const TinyLlamaShape& shape) {
  engine::Model m;
  engine::HParams& hp = m.hp;
  hp.n_vocab = shape.n_vocab, hp.n_embd = shape.n_embd, hp.n_layer = 3, hp.n_ff = shape.n_ff;
  hp.n_head = shape.n_head, hp.n_head_kv = shape.n_head_kv;
  hp.head_dim = 64, hp.n_rot = 64, hp.n_ctx_train = 64;
  hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
  hp.swa_layers.assign(3, false);
  uint32_t seed = shape.seed;
  // GGUF names, as load_model gives them (adapters find their targets by name).
  auto blk = [](int64_t i, const char* name) { return "blk." + std::to_string(i) + "." + name + ".weight"; };
  auto weight = [&](const std::string& name, int64_t n_in, int64_t n_out) {
    const auto w = random_values(static_cast<size_t>(n_in * n_out), seed++, 1.0f / std::sqrt(static_cast<float>(n_in)));
    if (shape.weight_type == GgmlType::F32) return engine::make_weight_f32(name, n_in, n_out, w);
    const size_t row_bytes = *ggml_row_bytes(shape.weight_type, static_cast<uint64_t>(n_in));
    std::vector<std::byte> raw(row_bytes * static_cast<size_t>(n_out));
    for (int64_t o = 0; o < n_out; ++o)
      quantize_row(shape.weight_type, w.data() + o * n_in, raw.data() + o * row_bytes, n_in, nullptr);
    return engine::make_weight(name, shape.weight_type, n_in, n_out, raw);
  };
  m.token_embd = weight("token_embd.weight", hp.n_embd, hp.n_vocab);
  m.output_norm.assign(static_cast<size_t>(hp.n_embd), 1.0f);
  const int64_t n_q = hp.n_head * hp.head_dim, n_kv = hp.n_head_kv * hp.head_dim;
  for (int64_t i = 0; i < hp.n_layer; ++i) {
    engine::Layer L;
    L.attn_norm.assign(static_cast<size_t>(hp.n_embd), 1.0f);
    L.ffn_norm = L.attn_norm;
    L.wq = weight(blk(i, "attn_q"), hp.n_embd, n_q);
    L.wk = weight(blk(i, "attn_k"), hp.n_embd, n_kv);
    L.wv = weight(blk(i, "attn_v"), hp.n_embd, n_kv);
    L.wo = weight(blk(i, "attn_output"), n_q, hp.n_embd);
    L.ffn_gate = weight(blk(i, "ffn_gate"), hp.n_embd, hp.n_ff);
    L.ffn_up = weight(blk(i, "ffn_up"), hp.n_embd, hp.n_ff);
    L.ffn_down = weight(blk(i, "ffn_down"), hp.n_ff, hp.n_embd);
    m.layers.push_back(std::move(L));
  }
  return m;
}

// Logits [tokens, n_vocab] of every token with the cache stored as `config`: one forward call
// for the batch (prefill), or one call per token (decode).
inline std::vector<float> logits_of(const engine::Model& m, const engine::KVCacheConfig& config,
                                    std::span<const int32_t> tokens, bool one_by_one) {
  engine::KVCache cache = engine::make_kv_cache(m, 32, config);
  const int64_t V = m.hp.n_vocab;
  std::vector<float> out(tokens.size() * static_cast<size_t>(V));
  if (!one_by_one) {
    engine::forward(m, cache, tokens, true, out.data());
    return out;
  }
  for (size_t t = 0; t < tokens.size(); ++t)
    engine::forward(m, cache, tokens.subspan(t, 1), false, out.data() + t * V);
  return out;
}

inline double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
  return d;
}

}  // namespace optiq::test
