#include "engine/kv_cache.h"

#include <algorithm>
#include <array>
#include <cmath>
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
  GgmlType ggml;       // storage of F32 ... IQ4_NL; unused for TurboQuant
  double turbo_bits;   // TurboQuant code bits per channel (kv::turbo_format), 0: not TurboQuant
  bool qjl;            // TurboQuant with the QJL residual sketch
};

constexpr std::array<KVTypeInfo, 15> kKVTypes = {{
    {KVType::F32, "f32", GgmlType::F32, 0, false},
    {KVType::F16, "f16", GgmlType::F16, 0, false},
    {KVType::Q8_0, "q8_0", GgmlType::Q8_0, 0, false},
    {KVType::Q5_0, "q5_0", GgmlType::Q5_0, 0, false},
    {KVType::Q5_1, "q5_1", GgmlType::Q5_1, 0, false},
    {KVType::Q4_0, "q4_0", GgmlType::Q4_0, 0, false},
    {KVType::Q4_1, "q4_1", GgmlType::Q4_1, 0, false},
    {KVType::IQ4_NL, "iq4_nl", GgmlType::IQ4_NL, 0, false},
    {KVType::TQ2, "tq2", GgmlType::F32, 2, false},
    {KVType::TQ2_5, "tq2_5", GgmlType::F32, 2.5, false},
    {KVType::TQ3, "tq3", GgmlType::F32, 3, false},
    {KVType::TQ3_5, "tq3_5", GgmlType::F32, 3.5, false},
    {KVType::TQ4, "tq4", GgmlType::F32, 4, false},
    {KVType::TQ3_QJL, "tq3_qjl", GgmlType::F32, 2, true},
    {KVType::TQ4_QJL, "tq4_qjl", GgmlType::F32, 3, true},
}};

// The model-wide seed every layer's TurboQuant rotations derive from.
constexpr uint64_t kTurboSeed = 0x5475726b76ull;

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

GgmlType kv_ggml_type(KVType t) {
  if (kv_type_is_turbo(t)) throw std::logic_error("kv_ggml_type: " + std::string(kv_type_name(t)) + " is not a ggml type");
  return info(t).ggml;
}

bool kv_type_is_turbo(KVType t) { return info(t).turbo_bits > 0; }

bool kv_type_is_block(KVType t) { return t != KVType::F32 && t != KVType::F16 && !kv_type_is_turbo(t); }

kv::TurboFormat kv_turbo_format(KVType t, int64_t head_dim) {
  if (!kv_type_is_turbo(t)) throw std::logic_error("kv_turbo_format: " + std::string(kv_type_name(t)) + " is not TurboQuant");
  return kv::turbo_format(head_dim, info(t).turbo_bits, info(t).qjl);
}

double kv_bits_per_value(KVType t, int64_t head_dim) {
  if (kv_type_is_turbo(t)) return kv_turbo_format(t, head_dim).bits_per_element();
  return ggml_bits_per_weight(info(t).ggml);
}

size_t kv_turbo_fixed_bytes(KVType t, bool keys, int64_t row_width, const TurboF16Rows& rows, int64_t n_ctx) {
  if (!kv_type_is_turbo(t)) return 0;
  const auto f16_rows = static_cast<size_t>(std::min(rows.sink + rows.recent, n_ctx) * row_width) * sizeof(uint16_t);
  const size_t stats = keys ? 2 * static_cast<size_t>(row_width) * sizeof(float) : 0;  // offset and scales
  return f16_rows + stats;
}

uint64_t turbo_rotation_seed(int64_t layer, bool values) {
  return kv::layer_rotation_seed(kTurboSeed, 2 * layer + (values ? 1 : 0));
}

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

namespace {

// The quantizer of a TurboQuant type at this head width, or null for another type. Heads of a
// power-of-two width get the randomized Hadamard rotation, others a dense one.
std::shared_ptr<const kv::TurboQuantizer> make_turbo(KVType t, int64_t head_dim, uint64_t seed) {
  if (!kv_type_is_turbo(t)) return nullptr;
  if (head_dim % 8 != 0)
    throw InputError("cache type", std::nullopt,
                     std::string(kv_type_name(t)) + " packs codes in groups of 8 channels and the model's heads are " +
                         std::to_string(head_dim) + " wide; TurboQuant needs a multiple of 8");
  const bool power_of_two = (head_dim & (head_dim - 1)) == 0;
  return std::make_shared<const kv::TurboQuantizer>(
      kv_turbo_format(t, head_dim), power_of_two ? kv::RotationKind::Hadamard : kv::RotationKind::Dense, seed);
}

}  // namespace

LayerKVCache::LayerKVCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, LayerKVTypes types, bool hadamard,
                           int64_t layer, TurboF16Rows turbo_f16)
    : n_ctx_(n_ctx), n_head_kv_(n_head_kv), head_dim_(head_dim), types_(types), f16_(turbo_f16) {
  if (f16_.sink < 0 || f16_.recent < 0 || f16_.key_stats < 0)
    throw InputError("cache type", std::nullopt,
                     "the f16 sink, recent and key statistics rows of a TurboQuant cache cannot be negative");
  if (info(types.v).qjl)
    throw InputError("cache type", std::nullopt,
                     std::string(kv_type_name(types.v)) +
                         " is for keys: its QJL sketch corrects inner products, and values are summed from their "
                         "codes alone (use tq3 or tq4 for values)");
  k_turbo_ = make_turbo(types.k, head_dim, turbo_rotation_seed(layer, false));
  if (k_turbo_) {
    k_offset_.assign(static_cast<size_t>(n_head_kv * head_dim), 0.0f);
    k_scale_.assign(k_offset_.size(), 1.0f);
  }
  v_turbo_ = make_turbo(types.v, head_dim, turbo_rotation_seed(layer, true));
  for (KVType t : {types.k, types.v}) {
    if (kv_type_is_turbo(t)) continue;
    const uint32_t block = ggml_traits(kv_ggml_type(t)).block_elems;
    if (head_dim % block != 0)
      throw InputError("cache type", std::nullopt,
                       std::string(kv_type_name(t)) + " stores blocks of " + std::to_string(block) +
                           " values and the model's heads are " + std::to_string(head_dim) +
                           " wide; a block type needs a multiple (llama.cpp refuses it too)");
  }
  k_rotation_ = hadamard_width(kv_type_is_block(types.k), hadamard, head_dim, /*whole_head=*/true);
  v_rotation_ = hadamard_width(kv_type_is_block(types.v), hadamard, head_dim, /*whole_head=*/false);
  const auto row_bytes = [&](KVType t, const kv::TurboQuantizer* turbo) {
    if (turbo) return static_cast<size_t>(n_head_kv) * turbo->row_bytes();
    return static_cast<size_t>(*ggml_row_bytes(kv_ggml_type(t), static_cast<uint64_t>(row_width())));
  };
  k_row_bytes_ = row_bytes(types.k, k_turbo_.get());
  v_row_bytes_ = row_bytes(types.v, v_turbo_.get());
  k_.resize(static_cast<size_t>(n_ctx) * k_row_bytes_);
  v_.resize(static_cast<size_t>(n_ctx) * v_row_bytes_);
  if (!has_turbo()) f16_ = {0, 0, 0};
  const auto sink_values = static_cast<size_t>(std::min(f16_.sink, n_ctx) * row_width());
  if (k_turbo_) k_sink_.resize(sink_values);
  if (v_turbo_) v_sink_.resize(sink_values);
}

LayerKVCache::Span LayerKVCache::codes_span(int64_t first, int64_t last) const {
  if (!has_turbo()) return {first, last};
  if (held_ && last < stat_positions()) return {last + 1, last};
  const int64_t window_lo = f16_.recent > 0 ? std::max(last - f16_.recent + 1, recent_first_) : last + 1;
  return {std::max(first, f16_.sink), std::min(last, window_lo - 1)};
}

const uint16_t* LayerKVCache::f16_row(const std::vector<uint16_t>& recent, const std::vector<uint16_t>& sink,
                                      const std::vector<uint16_t>& held, int64_t pos) const {
  const int64_t W = row_width();
  if (held_ && pos < stat_positions() && !held.empty()) return held.data() + pos * W;
  if (!sink.empty() && pos < f16_.sink) return sink.data() + pos * W;
  if (!recent.empty() && pos >= recent_first_ && pos < recent_end_) return recent.data() + (pos - recent_first_) * W;
  return nullptr;
}

void LayerKVCache::keep_f16_rows(int64_t pos, int64_t n, const float* k, const float* v) {
  const int64_t W = row_width();
  const auto keep = [&](std::vector<uint16_t>& sink, std::vector<uint16_t>& recent, const float* x, int64_t drop) {
    if (const int64_t m = std::min(n, f16_.sink - pos); m > 0)
      f32_to_f16_n(x, sink.data() + pos * W, static_cast<size_t>(m * W));
    if (f16_.recent == 0) return;
    recent.resize(static_cast<size_t>((recent_end_ - recent_first_) * W));
    recent.erase(recent.begin(), recent.begin() + drop * W);
    const size_t old = recent.size();
    recent.resize(old + static_cast<size_t>(n * W));
    f32_to_f16_n(x, recent.data() + old, static_cast<size_t>(n * W));
  };
  // The window continues at pos: a store before its end (a rewound context) cuts it there, and
  // one outside it starts a new window.
  if (pos >= recent_first_ && pos <= recent_end_) recent_end_ = pos;
  else recent_first_ = recent_end_ = pos;
  // The batch's first query needs positions from pos - recent + 1 on; keep them and the batch.
  const int64_t keep_from = std::clamp(pos - f16_.recent + 1, recent_first_, recent_end_);
  if (k_turbo_) keep(k_sink_, k_recent_, k, keep_from - recent_first_);
  if (v_turbo_) keep(v_sink_, v_recent_, v, keep_from - recent_first_);
  recent_first_ = keep_from;
  recent_end_ = pos + n;
}

namespace {

// n rows of `width` floats into rows of `type` at dst (row_bytes apart); a TurboQuant row is
// `turbo`'s rows of its heads one after another.
void store_rows(KVType type, const kv::TurboQuantizer* turbo, const float* x, int64_t n, int64_t width, uint8_t* dst,
                size_t row_bytes) {
  const auto len = static_cast<size_t>(n * width);
  if (turbo) {
    const int64_t d = turbo->format().dim;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t h = 0; h < width / d; ++h)
        turbo->quantize(x + t * width + h * d, dst + t * row_bytes + static_cast<size_t>(h) * turbo->row_bytes());
    return;
  }
  switch (type) {
    case KVType::F32: std::memcpy(dst, x, len * sizeof(float)); break;
    case KVType::F16: f32_to_f16_n(x, reinterpret_cast<uint16_t*>(dst), len); break;
    default:
      for (int64_t t = 0; t < n; ++t) quantize_row_from_float(kv_ggml_type(type), x + t * width, dst + t * row_bytes, width);
  }
}

}  // namespace

void LayerKVCache::store_key_codes(int64_t pos, int64_t n, const float* k) {
  const int64_t W = row_width();
  std::vector<float> x(k, k + n * W);  // a * (k - m): [n, row_width]
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < W; ++i) {
      float& e = x[static_cast<size_t>(t * W + i)];
      e = (e - k_offset_[static_cast<size_t>(i)]) * k_scale_[static_cast<size_t>(i)];
    }
  store_rows(types_.k, k_turbo_.get(), x.data(), n, W, k_.data() + static_cast<size_t>(pos) * k_row_bytes_, k_row_bytes_);
}

void LayerKVCache::hold(int64_t pos, int64_t n, const float* k, const float* v, const float* q, int64_t n_head) {
  const int64_t W = row_width(), S = stat_positions(), m = std::min(n, S - pos);
  if (m <= 0) return;
  const auto rows = static_cast<size_t>(S * W);
  k_held_.resize(rows);
  f32_to_f16_n(k, k_held_.data() + pos * W, static_cast<size_t>(m * W));
  if (v_turbo_) {
    v_held_.resize(rows);
    f32_to_f16_n(v, v_held_.data() + pos * W, static_cast<size_t>(m * W));
  }
  q_sq_held_.resize(rows);
  if (!q) {
    stats_queries_ = false;
    return;
  }
  const int64_t D = head_dim_, group = n_head / n_head_kv_;
  for (int64_t t = 0; t < m; ++t)
    for (int64_t g = 0; g < n_head_kv_; ++g) {
      float* sq = q_sq_held_.data() + (pos + t) * W + g * D;
      std::fill(sq, sq + D, 0.0f);
      for (int64_t j = 0; j < group; ++j) {
        const float* qh = q + (t * n_head + g * group + j) * D;
        for (int64_t i = 0; i < D; ++i) sq[i] += qh[i] * qh[i];
      }
    }
}

void LayerKVCache::finish_key_stats() {
  const int64_t W = row_width(), D = head_dim_, S = stat_positions();
  std::vector<float> keys(static_cast<size_t>(S * W));  // the held keys: [S, row_width]
  f16_to_f32_n(k_held_.data(), keys.data(), keys.size());
  std::fill(k_offset_.begin(), k_offset_.end(), 0.0f);
  for (int64_t t = 0; t < S; ++t)
    for (int64_t i = 0; i < W; ++i) k_offset_[static_cast<size_t>(i)] += keys[static_cast<size_t>(t * W + i)] / S;
  std::fill(k_scale_.begin(), k_scale_.end(), 1.0f);
  if (stats_queries_) {
    // Per channel: the summed squares of the centered keys and of the queries; each gets a floor
    // of 1e-6 of its head's largest so that a silent channel cannot blow a scale up.
    std::vector<double> kk(static_cast<size_t>(W), 0.0), qq(static_cast<size_t>(W), 0.0);
    for (int64_t t = 0; t < S; ++t)
      for (int64_t i = 0; i < W; ++i) {
        const double c = keys[static_cast<size_t>(t * W + i)] - k_offset_[static_cast<size_t>(i)];
        kk[static_cast<size_t>(i)] += c * c;
        qq[static_cast<size_t>(i)] += q_sq_held_[static_cast<size_t>(t * W + i)];
      }
    for (int64_t g = 0; g < n_head_kv_; ++g) {
      const double* kh = kk.data() + g * D;
      const double* qh = qq.data() + g * D;
      const double k_floor = 1e-6 * *std::max_element(kh, kh + D), q_floor = 1e-6 * *std::max_element(qh, qh + D);
      if (k_floor <= 0 || q_floor <= 0) continue;
      // log a = log(rms q / rms k) / 4 = log(sum q^2 / sum k^2) / 8 up to a constant, which the
      // normalization to geometric mean 1 removes.
      std::vector<double> log_a(static_cast<size_t>(D));
      double mean_log = 0;
      for (int64_t i = 0; i < D; ++i) {
        log_a[static_cast<size_t>(i)] = std::log(std::max(qh[i], q_floor) / std::max(kh[i], k_floor)) / 8.0;
        mean_log += log_a[static_cast<size_t>(i)] / static_cast<double>(D);
      }
      for (int64_t i = 0; i < D; ++i)
        k_scale_[static_cast<size_t>(g * D + i)] = static_cast<float>(std::exp(log_a[static_cast<size_t>(i)] - mean_log));
    }
  }
  store_key_codes(0, S, keys.data());
  stats_pending_ = false;
}

void LayerKVCache::store(int64_t pos, int64_t n, const float* k, const float* v, const float* q, int64_t n_head) {
  const int64_t S = stat_positions();
  if (k_turbo_ && S > 0 && pos == 0) {
    stats_pending_ = held_ = stats_queries_ = true;
  } else if (held_ && pos >= S && !stats_pending_) {
    // The queries among the statistics' positions have all been answered.
    held_ = false;
    k_held_ = {};
    v_held_ = {};
    q_sq_held_ = {};
  }
  if (f16_.sink > 0 || f16_.recent > 0) keep_f16_rows(pos, n, k, v);
  store_rows(types_.v, v_turbo_.get(), v, n, row_width(), v_.data() + static_cast<size_t>(pos) * v_row_bytes_,
             v_row_bytes_);
  if (!k_turbo_) {
    store_rows(types_.k, nullptr, k, n, row_width(), k_.data() + static_cast<size_t>(pos) * k_row_bytes_, k_row_bytes_);
    return;
  }
  if (held_) hold(pos, n, k, v, q, n_head);
  if (!stats_pending_) return store_key_codes(pos, n, k);
  if (pos + n < S) return;
  finish_key_stats();  // codes of [0, S), from the held rows
  const int64_t from = std::max(pos, S);
  store_key_codes(from, pos + n - from, k + (from - pos) * row_width());
}

namespace {

const float* as_floats(KVType type, const std::vector<uint8_t>& storage, int64_t n_values, std::vector<float>& scratch) {
  if (type == KVType::F32) return reinterpret_cast<const float*>(storage.data());
  if (type != KVType::F16) throw std::logic_error("LayerKVCache: keys()/values() of a quantized cache");
  scratch.resize(static_cast<size_t>(n_values));
  f16_to_f32_n(reinterpret_cast<const uint16_t*>(storage.data()), scratch.data(), scratch.size());
  return scratch.data();
}

}  // namespace

const float* LayerKVCache::keys(int64_t n) { return as_floats(types_.k, k_, n * row_width(), k_scratch_); }

const float* LayerKVCache::values(int64_t n) { return as_floats(types_.v, v_, n * row_width(), v_scratch_); }

bool KVCache::rolls_back() const {
  return std::none_of(layers.begin(), layers.end(), [](const LayerKVCache& l) { return l.has_turbo(); });
}

void KVCache::roll_back(int64_t n) {
  if (!rolls_back() || n < 0 || n > n_past) throw std::logic_error("KVCache::roll_back: cannot drop positions here");
  n_past = n;
}

size_t KVCache::bytes() const {
  size_t b = 0;
  for (const auto& l : layers) b += l.k_bytes() + l.v_bytes();
  return b;
}

}  // namespace optiq::engine
