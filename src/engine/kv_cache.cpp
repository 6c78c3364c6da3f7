#include "engine/kv_cache.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

#include "quant/float16.h"
#include "quant/quantize.h"
#include "util/error.h"

namespace optiq::engine {
namespace {

struct KVTypeInfo {
  KVType type;
  std::string_view name;
  GgmlType ggml;
};

constexpr std::array<KVTypeInfo, 8> kKVTypes = {{
    {KVType::F32, "f32", GgmlType::F32},
    {KVType::F16, "f16", GgmlType::F16},
    {KVType::Q8_0, "q8_0", GgmlType::Q8_0},
    {KVType::Q5_0, "q5_0", GgmlType::Q5_0},
    {KVType::Q5_1, "q5_1", GgmlType::Q5_1},
    {KVType::Q4_0, "q4_0", GgmlType::Q4_0},
    {KVType::Q4_1, "q4_1", GgmlType::Q4_1},
    {KVType::IQ4_NL, "iq4_nl", GgmlType::IQ4_NL},
}};

const KVTypeInfo& info(KVType t) { return kKVTypes[static_cast<size_t>(t)]; }

// llama.cpp's chunk widths: K in the largest power of two >= 64 dividing head_dim (it rotates
// whole heads when it can), V always in 64s; no rotation below 64.
int64_t hadamard_width(bool block, bool enabled, int64_t head_dim, bool whole_head) {
  if (!block || !enabled || head_dim % 64 != 0) return 0;
  int64_t w = 64;
  if (whole_head)
    while (head_dim % (2 * w) == 0) w *= 2;
  return w;
}

}  // namespace

std::string_view kv_type_name(KVType t) { return info(t).name; }

GgmlType kv_ggml_type(KVType t) { return info(t).ggml; }

bool kv_type_is_block(KVType t) { return t != KVType::F32 && t != KVType::F16; }

std::optional<KVType> kv_type_from_name(std::string_view name) {
  for (const auto& i : kKVTypes)
    if (i.name == name) return i.type;
  return std::nullopt;
}

std::string kv_type_names() {
  std::string all;
  for (const auto& i : kKVTypes) all += (all.empty() ? "" : ", ") + std::string(i.name);
  return all;
}

KVType parse_kv_type(const std::string& name) {
  if (auto t = kv_type_from_name(name)) return *t;
  throw InputError("cache type", std::nullopt, "\"" + name + "\" is not a KV cache type (" + kv_type_names() + ")");
}

LayerKVCache::LayerKVCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, LayerKVTypes types, bool hadamard)
    : n_ctx_(n_ctx), n_head_kv_(n_head_kv), head_dim_(head_dim), types_(types) {
  for (KVType t : {types.k, types.v}) {
    const uint32_t block = ggml_traits(kv_ggml_type(t)).block_elems;
    if (head_dim % block != 0)
      throw InputError("cache type", std::nullopt,
                       std::string(kv_type_name(t)) + " stores blocks of " + std::to_string(block) +
                           " values and the model's heads are " + std::to_string(head_dim) +
                           " wide; a block type needs a multiple (llama.cpp refuses it too)");
  }
  k_rotation_ = hadamard_width(kv_type_is_block(types.k), hadamard, head_dim, /*whole_head=*/true);
  v_rotation_ = hadamard_width(kv_type_is_block(types.v), hadamard, head_dim, /*whole_head=*/false);
  k_row_bytes_ = static_cast<size_t>(*ggml_row_bytes(kv_ggml_type(types.k), static_cast<uint64_t>(row_width())));
  v_row_bytes_ = static_cast<size_t>(*ggml_row_bytes(kv_ggml_type(types.v), static_cast<uint64_t>(row_width())));
  k_.resize(static_cast<size_t>(n_ctx) * k_row_bytes_);
  v_.resize(static_cast<size_t>(n_ctx) * v_row_bytes_);
}

namespace {

// n rows of `width` floats into rows of `type` at dst (row_bytes apart).
void store_rows(KVType type, const float* x, int64_t n, int64_t width, uint8_t* dst, size_t row_bytes) {
  const auto len = static_cast<size_t>(n * width);
  switch (type) {
    case KVType::F32: std::memcpy(dst, x, len * sizeof(float)); break;
    case KVType::F16: f32_to_f16_n(x, reinterpret_cast<uint16_t*>(dst), len); break;
    default:
      for (int64_t t = 0; t < n; ++t) quantize_row_from_float(kv_ggml_type(type), x + t * width, dst + t * row_bytes, width);
  }
}

}  // namespace

void LayerKVCache::store(int64_t pos, int64_t n, const float* k, const float* v) {
  store_rows(types_.k, k, n, row_width(), k_.data() + static_cast<size_t>(pos) * k_row_bytes_, k_row_bytes_);
  store_rows(types_.v, v, n, row_width(), v_.data() + static_cast<size_t>(pos) * v_row_bytes_, v_row_bytes_);
}

namespace {

const float* as_floats(KVType type, const std::vector<uint8_t>& storage, int64_t n_values, std::vector<float>& scratch) {
  if (type == KVType::F32) return reinterpret_cast<const float*>(storage.data());
  if (type != KVType::F16) throw std::logic_error("LayerKVCache: keys()/values() of a block-quantized cache");
  scratch.resize(static_cast<size_t>(n_values));
  f16_to_f32_n(reinterpret_cast<const uint16_t*>(storage.data()), scratch.data(), scratch.size());
  return scratch.data();
}

}  // namespace

const float* LayerKVCache::keys(int64_t n) { return as_floats(types_.k, k_, n * row_width(), k_scratch_); }

const float* LayerKVCache::values(int64_t n) { return as_floats(types_.v, v_, n * row_width(), v_scratch_); }

size_t KVCache::bytes() const {
  size_t b = 0;
  for (const auto& l : layers) b += l.k_bytes() + l.v_bytes();
  return b;
}

}  // namespace optiq::engine
