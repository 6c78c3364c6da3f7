// The key/value cache of causal attention: each layer's rotated keys and values of every
// position seen so far. The storage type is chosen per layer, so a layer whose attention is
// robust can keep its cache in a smaller type than one that is not.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace optiq::engine {

enum class KVType { F32, F16 };

std::string_view kv_type_name(KVType t);       // "f32", "f16"
KVType parse_kv_type(const std::string& name);  // throws InputError for an unknown name

class LayerKVCache {
 public:
  LayerKVCache() = default;
  LayerKVCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, KVType type);

  int64_t n_ctx() const { return n_ctx_; }
  int64_t row_width() const { return n_head_kv_ * head_dim_; }  // floats per position
  KVType type() const { return type_; }

  // Stores n positions from `pos` on: k, v are [n, n_head_kv, head_dim] f32.
  void store(int64_t pos, int64_t n, const float* k, const float* v);
  // Positions [0, n) as f32 [n, n_head_kv, head_dim]: the storage itself for F32, else
  // converted into the scratch buffers (valid until the next call).
  const float* keys(int64_t n);
  const float* values(int64_t n);

 private:
  int64_t n_ctx_ = 0;      // positions the cache holds
  int64_t n_head_kv_ = 0;  // key/value heads
  int64_t head_dim_ = 0;   // width of one head
  KVType type_ = KVType::F32;
  std::vector<float> k32_, v32_;     // F32 storage [n_ctx, n_head_kv, head_dim]
  std::vector<uint16_t> k16_, v16_;  // F16 storage, same shape
  std::vector<float> k_scratch_, v_scratch_;  // F16 storage converted for one attention call
};

struct KVCache {
  std::vector<LayerKVCache> layers;  // [n_layer]
  int64_t n_ctx = 0;                 // capacity in positions (the same in every layer)
  int64_t n_past = 0;                // positions filled: the next token goes to position n_past

  void clear() { n_past = 0; }
};

}  // namespace optiq::engine
