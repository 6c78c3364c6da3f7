// The key/value cache of causal attention: each layer's rotated keys and values of every
// position seen so far. f32 today; the storage type is per layer so that later slices can keep
// some layers' caches in a smaller type.
#pragma once

#include <cstdint>
#include <vector>

namespace optiq::engine {

struct LayerKVCache {
  int64_t n_ctx = 0;      // positions the cache holds
  int64_t n_head_kv = 0;  // key/value heads
  int64_t head_dim = 0;   // width of one head
  std::vector<float> k;   // [n_ctx, n_head_kv, head_dim]; rows 0 .. n_past-1 valid
  std::vector<float> v;   // [n_ctx, n_head_kv, head_dim]; rows 0 .. n_past-1 valid

  LayerKVCache() = default;
  LayerKVCache(int64_t n_ctx_, int64_t n_head_kv_, int64_t head_dim_)
      : n_ctx(n_ctx_), n_head_kv(n_head_kv_), head_dim(head_dim_),
        k(static_cast<size_t>(n_ctx_ * n_head_kv_ * head_dim_)),
        v(static_cast<size_t>(n_ctx_ * n_head_kv_ * head_dim_)) {}

  float* k_row(int64_t pos) { return k.data() + pos * n_head_kv * head_dim; }  // [n_head_kv, head_dim]
  float* v_row(int64_t pos) { return v.data() + pos * n_head_kv * head_dim; }  // [n_head_kv, head_dim]
};

struct KVCache {
  std::vector<LayerKVCache> layers;  // [n_layer]
  int64_t n_ctx = 0;                 // capacity in positions (the same in every layer)
  int64_t n_past = 0;                // positions filled: the next token goes to position n_past

  void clear() { n_past = 0; }
};

}  // namespace optiq::engine
