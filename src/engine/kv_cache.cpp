#include "engine/kv_cache.h"

#include <algorithm>

#include "quant/float16.h"
#include "util/error.h"

namespace optiq::engine {

std::string_view kv_type_name(KVType t) { return t == KVType::F32 ? "f32" : "f16"; }

KVType parse_kv_type(const std::string& name) {
  if (name == "f32") return KVType::F32;
  if (name == "f16") return KVType::F16;
  throw InputError("cache type", std::nullopt, "\"" + name + "\" is not a KV cache type (f32, f16)");
}

LayerKVCache::LayerKVCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, KVType type)
    : n_ctx_(n_ctx), n_head_kv_(n_head_kv), head_dim_(head_dim), type_(type) {
  const auto n = static_cast<size_t>(n_ctx * n_head_kv * head_dim);
  if (type == KVType::F32) {
    k32_.resize(n);
    v32_.resize(n);
  } else {
    k16_.resize(n);
    v16_.resize(n);
  }
}

void LayerKVCache::store(int64_t pos, int64_t n, const float* k, const float* v) {
  const int64_t w = row_width();
  const auto off = static_cast<size_t>(pos * w), len = static_cast<size_t>(n * w);
  if (type_ == KVType::F32) {
    std::copy(k, k + len, k32_.begin() + static_cast<ptrdiff_t>(off));
    std::copy(v, v + len, v32_.begin() + static_cast<ptrdiff_t>(off));
  } else {
    f32_to_f16_n(k, k16_.data() + off, len);
    f32_to_f16_n(v, v16_.data() + off, len);
  }
}

const float* LayerKVCache::keys(int64_t n) {
  if (type_ == KVType::F32) return k32_.data();
  k_scratch_.resize(static_cast<size_t>(n * row_width()));
  f16_to_f32_n(k16_.data(), k_scratch_.data(), k_scratch_.size());
  return k_scratch_.data();
}

const float* LayerKVCache::values(int64_t n) {
  if (type_ == KVType::F32) return v32_.data();
  v_scratch_.resize(static_cast<size_t>(n * row_width()));
  f16_to_f32_n(v16_.data(), v_scratch_.data(), v_scratch_.size());
  return v_scratch_.data();
}

}  // namespace optiq::engine
