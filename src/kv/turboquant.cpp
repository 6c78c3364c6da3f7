#include "kv/turboquant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <stdexcept>
#include <string>

#include "kv/turboquant_kernels.h"
#include "quant/dot.h"
#include "quant/float16.h"

namespace optiq::kv {
namespace {

constexpr float kF16Max = 65504.0f;

// A row's trailing f16 fields, read and written byte-wise (rows have no alignment).
float load_f16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return f16_to_f32(h);
}

void store_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(std::min(v, kF16Max));
  std::memcpy(p, &h, sizeof h);
}

// Index of the cell of x: the number of boundaries below it (ties go to the upper cell).
uint32_t nearest_code(const std::vector<float>& boundaries, float x) {
  return static_cast<uint32_t>(std::upper_bound(boundaries.begin(), boundaries.end(), x) - boundaries.begin());
}

// Writes `codes` (one per channel, `bits` wide) as groups of 8 into `out` (bits bytes per group).
void pack_codes(const uint32_t* codes, int64_t channels, int bits, uint8_t* out) {
  for (int64_t g = 0; g < channels / 8; ++g) {
    uint32_t word = 0;
    for (int j = 0; j < 8; ++j) word |= codes[8 * g + j] << (j * bits);
    for (int b = 0; b < bits; ++b) out[g * bits + b] = static_cast<uint8_t>(word >> (8 * b));
  }
}

void check_bits(int bits, const char* which) {
  if (bits < 1 || bits > 4)
    throw std::invalid_argument(std::string("TurboQuant format: ") + which + " is " + std::to_string(bits) +
                                ", not 1..4");
}

}  // namespace

namespace detail {

float score_codes_scalar(int bits, const float* q, const uint8_t* codes, const float* centroids, int64_t groups) {
  const uint32_t mask = (1u << bits) - 1;
  float acc = 0.0f;
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t word = 0;
    std::memcpy(&word, codes + g * bits, static_cast<size_t>(bits));
    for (int j = 0; j < 8; ++j) acc += q[8 * g + j] * centroids[(word >> (j * bits)) & mask];
  }
  return acc;
}

void accumulate_codes_scalar(int bits, float* out, float scale, const uint8_t* codes, const float* centroids,
                             int64_t groups) {
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t word = 0;
    std::memcpy(&word, codes + g * bits, static_cast<size_t>(bits));
    for (int j = 0; j < 8; ++j) out[8 * g + j] += scale * centroids[(word >> (j * bits)) & mask];
  }
}

void decode_codes_scalar(int bits, float* out, const uint8_t* codes, const float* centroids, int64_t groups) {
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t g = 0; g < groups; ++g) {
    uint32_t word = 0;
    std::memcpy(&word, codes + g * bits, static_cast<size_t>(bits));
    for (int j = 0; j < 8; ++j) out[8 * g + j] = centroids[(word >> (j * bits)) & mask];
  }
}

void score_rows_scalar(int bits, const float* q, int64_t q_stride, int n_q, const uint8_t* codes, size_t row_stride,
                       int64_t n, const float* centroids, int64_t groups, float* out, int64_t out_stride) {
  for (int64_t p = 0; p < n; ++p)
    for (int j = 0; j < n_q; ++j)
      out[j * out_stride + p] +=
          score_codes_scalar(bits, q + j * q_stride, codes + static_cast<size_t>(p) * row_stride, centroids, groups);
}

void accumulate_rows_scalar(int bits, float* out, int64_t out_stride, int n_q, const float* w, int64_t w_stride,
                            const uint8_t* codes, size_t row_stride, int64_t n, const float* centroids, int64_t groups) {
  for (int64_t p = 0; p < n; ++p)
    for (int j = 0; j < n_q; ++j)
      accumulate_codes_scalar(bits, out + j * out_stride, w[j * w_stride + p], codes + static_cast<size_t>(p) * row_stride,
                              centroids, groups);
}

bool turbo_avx2_available() { return dot_isa_available(DotIsa::Avx2); }

}  // namespace detail

double TurboFormat::bits_per_element() const {
  const double code_bits = static_cast<double>(n_hi * bits_hi + (dim - n_hi) * bits_lo);
  const double qjl_bits = qjl ? static_cast<double>(dim + 16) : 0.0;
  return (code_bits + 16.0 + qjl_bits) / static_cast<double>(dim);
}

TurboFormat turbo_format(int64_t dim, double bits, bool qjl) {
  if (dim <= 0 || dim % 8 != 0)
    throw std::invalid_argument("TurboQuant format: head width " + std::to_string(dim) + " is not a multiple of 8");
  TurboFormat f;
  f.dim = dim;
  f.qjl = qjl;
  const int whole = static_cast<int>(std::floor(bits));
  if (bits == whole && whole >= 1 && whole <= 4) {
    f.bits_hi = f.bits_lo = whole;
    f.n_hi = 0;
  } else if (bits == 2.5 || bits == 3.5) {
    f.bits_hi = whole + 1;
    f.bits_lo = whole;
    f.n_hi = dim / 2 / 8 * 8;
  } else {
    throw std::invalid_argument("TurboQuant format: " + std::to_string(bits) + " bits is not 1, 2, 2.5, 3, 3.5 or 4");
  }
  return f;
}

TurboQuantizer::TurboQuantizer(const TurboFormat& format, RotationKind rotation, uint64_t seed)
    : format_(format), rotation_(format.dim, rotation, seed) {
  const int64_t d = format.dim;
  if (d <= 0 || d % 8 != 0)
    throw std::invalid_argument("TurboQuant format: head width " + std::to_string(d) + " is not a multiple of 8");
  if (format.n_hi < 0 || format.n_hi > d || format.n_hi % 8 != 0)
    throw std::invalid_argument("TurboQuant format: n_hi " + std::to_string(format.n_hi) +
                                " is not a multiple of 8 in 0.." + std::to_string(d));
  check_bits(format.bits_hi, "bits_hi");
  check_bits(format.bits_lo, "bits_lo");
  const bool avx2 = detail::turbo_avx2_available();
  score_codes_ = avx2 ? detail::score_codes_avx2 : detail::score_codes_scalar;
  accumulate_codes_ = avx2 ? detail::accumulate_codes_avx2 : detail::accumulate_codes_scalar;
  decode_codes_ = avx2 ? detail::decode_codes_avx2 : detail::decode_codes_scalar;
  score_rows_ = avx2 ? detail::score_rows_avx2 : detail::score_rows_scalar;
  accumulate_rows_ = avx2 ? detail::accumulate_rows_avx2 : detail::accumulate_rows_scalar;
  book_hi_ = &lloyd_max_codebook(d, format.bits_hi);
  book_lo_ = &lloyd_max_codebook(d, format.bits_lo);
  code_bytes_ = static_cast<size_t>(format.n_hi / 8 * format.bits_hi + (d - format.n_hi) / 8 * format.bits_lo);
  row_bytes_ = code_bytes_ + 2 + (format.qjl ? static_cast<size_t>(d / 8 + 2) : 0);
  if (format.qjl) {
    // The sketch's normals come from their own stream: seed's rotation stays the same with or
    // without QJL.
    std::mt19937_64 rng(layer_rotation_seed(seed, -2));
    sketch_.resize(static_cast<size_t>(d * d));
    for (size_t i = 0; i < sketch_.size(); i += 2) {
      const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1p-53;
      const double u2 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1p-53;
      const double r = std::sqrt(-2.0 * std::log(u1));
      sketch_[i] = static_cast<float>(r * std::cos(2.0 * std::numbers::pi * u2));
      sketch_[i + 1] = static_cast<float>(r * std::sin(2.0 * std::numbers::pi * u2));
    }
  }
}

float TurboQuantizer::row_norm(const uint8_t* row) const { return load_f16(row + row_bytes_ - 2); }

void TurboQuantizer::quantize(const float* x, uint8_t* row) const {
  const int64_t d = format_.dim;
  std::vector<float> u(static_cast<size_t>(d));
  rotation_.apply(x, u.data());
  double sum_sq = 0.0;
  for (int64_t i = 0; i < d; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const float norm = static_cast<float>(std::sqrt(sum_sq));
  const float inv = norm > 0.0f ? 1.0f / norm : 0.0f;
  std::vector<uint32_t> codes(static_cast<size_t>(d));
  for (int64_t i = 0; i < d; ++i) {
    u[i] *= inv;
    codes[i] = nearest_code((i < format_.n_hi ? book_hi_ : book_lo_)->boundaries, u[i]);
  }
  pack_codes(codes.data(), format_.n_hi, format_.bits_hi, row);
  pack_codes(codes.data() + format_.n_hi, d - format_.n_hi, format_.bits_lo,
             row + format_.n_hi / 8 * format_.bits_hi);
  if (format_.qjl) {
    std::vector<float> residual(static_cast<size_t>(d));
    double r_sq = 0.0;
    for (int64_t i = 0; i < d; ++i) {
      residual[i] = u[i] - (i < format_.n_hi ? book_hi_ : book_lo_)->centroids[codes[i]];
      r_sq += static_cast<double>(residual[i]) * residual[i];
    }
    uint8_t* signs = row + code_bytes_;
    std::memset(signs, 0, static_cast<size_t>(d / 8));
    for (int64_t j = 0; j < d; ++j) {
      const float* s = sketch_.data() + j * d;
      float proj = 0.0f;
      for (int64_t i = 0; i < d; ++i) proj += s[i] * residual[i];
      if (proj >= 0.0f) signs[j / 8] |= static_cast<uint8_t>(1u << (j % 8));
    }
    store_f16(signs + d / 8, static_cast<float>(std::sqrt(r_sq)));
  }
  store_f16(row + row_bytes_ - 2, norm);
}

void TurboQuantizer::decode_unit(const uint8_t* row, float* u) const {
  decode_codes_(format_.bits_hi, u, row, book_hi_->centroids.data(), format_.n_hi / 8);
  decode_codes_(format_.bits_lo, u + format_.n_hi, row + format_.n_hi / 8 * format_.bits_hi, book_lo_->centroids.data(),
                (format_.dim - format_.n_hi) / 8);
}

void TurboQuantizer::dequantize(const uint8_t* row, float* x) const {
  dequantize_rotated(row, x);
  rotation_.apply_inverse(x, x);
}

void TurboQuantizer::dequantize_rotated(const uint8_t* row, float* u) const {
  const int64_t d = format_.dim;
  decode_unit(row, u);
  if (format_.qjl) {
    // u += ||r|| sqrt(pi/2)/d * S^T sign(S r): the estimator whose inner products score uses.
    const uint8_t* signs = row + code_bytes_;
    const float gain = load_f16(signs + d / 8) * std::sqrt(std::numbers::pi_v<float> / 2) / static_cast<float>(d);
    for (int64_t j = 0; j < d; ++j) {
      const float sign = (signs[j / 8] >> (j % 8)) & 1 ? gain : -gain;
      const float* s = sketch_.data() + j * d;
      for (int64_t i = 0; i < d; ++i) u[i] += sign * s[i];
    }
  }
  const float norm = row_norm(row);
  for (int64_t i = 0; i < d; ++i) u[i] *= norm;
}

void TurboQuantizer::prepare_query(const float* q, float* prepared) const {
  const int64_t d = format_.dim;
  rotation_.apply(q, prepared);
  if (!format_.qjl) return;
  for (int64_t j = 0; j < d; ++j) {
    const float* s = sketch_.data() + j * d;
    float acc = 0.0f;
    for (int64_t i = 0; i < d; ++i) acc += s[i] * prepared[i];
    prepared[d + j] = acc;
  }
}

float TurboQuantizer::score(const float* prepared, const uint8_t* row) const {
  const int64_t d = format_.dim, n_hi = format_.n_hi;
  float dot = 0.0f;
  if (n_hi > 0) dot = score_codes_(format_.bits_hi, prepared, row, book_hi_->centroids.data(), n_hi / 8);
  if (n_hi < d)
    dot += score_codes_(format_.bits_lo, prepared + n_hi, row + n_hi / 8 * format_.bits_hi,
                        book_lo_->centroids.data(), (d - n_hi) / 8);
  if (format_.qjl) {
    const uint8_t* signs = row + code_bytes_;
    const float* sketch_q = prepared + d;
    float signed_sum = 0.0f;
    for (int64_t j = 0; j < d; ++j) signed_sum += (signs[j / 8] >> (j % 8)) & 1 ? sketch_q[j] : -sketch_q[j];
    dot += load_f16(signs + d / 8) * std::sqrt(std::numbers::pi_v<float> / 2) / static_cast<float>(d) * signed_sum;
  }
  return row_norm(row) * dot;
}

void TurboQuantizer::accumulate(float* out_rot, float weight, const uint8_t* row) const {
  const int64_t d = format_.dim, n_hi = format_.n_hi;
  const float scale = weight * row_norm(row);
  if (n_hi > 0) accumulate_codes_(format_.bits_hi, out_rot, scale, row, book_hi_->centroids.data(), n_hi / 8);
  if (n_hi < d)
    accumulate_codes_(format_.bits_lo, out_rot + n_hi, scale, row + n_hi / 8 * format_.bits_hi,
                      book_lo_->centroids.data(), (d - n_hi) / 8);
}

void TurboQuantizer::score_rows(const float* prepared, int64_t n_q, const uint8_t* rows, size_t row_stride, int64_t n,
                                float scale, float* scores, int64_t score_stride) const {
  const int64_t d = format_.dim, n_hi = format_.n_hi, qf = query_floats();
  if (format_.qjl) {
    for (int64_t j = 0; j < n_q; ++j)
      for (int64_t p = 0; p < n; ++p)
        scores[j * score_stride + p] = scale * score(prepared + j * qf, rows + static_cast<size_t>(p) * row_stride);
    return;
  }
  for (int64_t j = 0; j < n_q; ++j) std::fill(scores + j * score_stride, scores + j * score_stride + n, 0.0f);
  for (int64_t j0 = 0; j0 < n_q; j0 += 4) {
    const int nq = static_cast<int>(std::min<int64_t>(4, n_q - j0));
    const float* q = prepared + j0 * qf;
    float* out = scores + j0 * score_stride;
    if (n_hi > 0)
      score_rows_(format_.bits_hi, q, qf, nq, rows, row_stride, n, book_hi_->centroids.data(), n_hi / 8, out, score_stride);
    if (n_hi < d)
      score_rows_(format_.bits_lo, q + n_hi, qf, nq, rows + n_hi / 8 * format_.bits_hi, row_stride, n,
                  book_lo_->centroids.data(), (d - n_hi) / 8, out, score_stride);
  }
  for (int64_t p = 0; p < n; ++p) {
    const float f = scale * row_norm(rows + static_cast<size_t>(p) * row_stride);
    for (int64_t j = 0; j < n_q; ++j) scores[j * score_stride + p] *= f;
  }
}

void TurboQuantizer::accumulate_rows(float* out_rot, int64_t n_q, const float* weights, int64_t w_stride,
                                     const uint8_t* rows, size_t row_stride, int64_t n) const {
  const int64_t d = format_.dim, n_hi = format_.n_hi;
  std::vector<float> scaled(static_cast<size_t>(n_q * n));  // [n_q, n] weight * ||x_p||
  for (int64_t p = 0; p < n; ++p) {
    const float norm = row_norm(rows + static_cast<size_t>(p) * row_stride);
    for (int64_t j = 0; j < n_q; ++j) scaled[static_cast<size_t>(j * n + p)] = weights[j * w_stride + p] * norm;
  }
  for (int64_t j0 = 0; j0 < n_q; j0 += 4) {
    const int nq = static_cast<int>(std::min<int64_t>(4, n_q - j0));
    float* out = out_rot + j0 * d;
    const float* w = scaled.data() + j0 * n;
    if (n_hi > 0)
      accumulate_rows_(format_.bits_hi, out, d, nq, w, n, rows, row_stride, n, book_hi_->centroids.data(), n_hi / 8);
    if (n_hi < d)
      accumulate_rows_(format_.bits_lo, out + n_hi, d, nq, w, n, rows + n_hi / 8 * format_.bits_hi, row_stride, n,
                       book_lo_->centroids.data(), (d - n_hi) / 8);
  }
}

void turbo_attention(const TurboQuantizer& key_q, const TurboQuantizer& value_q, const float* q,
                     const uint8_t* k_rows, const uint8_t* v_rows, size_t stride, int64_t n, float scale,
                     float* out) {
  const int64_t d = value_q.format().dim;
  if (key_q.format().dim != d)
    throw std::invalid_argument("turbo_attention: key width " + std::to_string(key_q.format().dim) +
                                " differs from value width " + std::to_string(d));
  if (value_q.format().qjl) throw std::invalid_argument("turbo_attention: values are stored with QJL");
  std::vector<float> prepared(static_cast<size_t>(key_q.query_floats()));
  key_q.prepare_query(q, prepared.data());
  std::vector<float> weights(static_cast<size_t>(n));
  float max_score = -std::numeric_limits<float>::infinity();
  for (int64_t p = 0; p < n; ++p) {
    weights[p] = scale * key_q.score(prepared.data(), k_rows + static_cast<size_t>(p) * stride);
    max_score = std::max(max_score, weights[p]);
  }
  float sum = 0.0f;
  for (int64_t p = 0; p < n; ++p) {
    weights[p] = std::exp(weights[p] - max_score);
    sum += weights[p];
  }
  std::vector<float> out_rot(static_cast<size_t>(d), 0.0f);
  for (int64_t p = 0; p < n; ++p)
    value_q.accumulate(out_rot.data(), weights[p] / sum, v_rows + static_cast<size_t>(p) * stride);
  value_q.unrotate(out_rot.data(), out);
}

}  // namespace optiq::kv
