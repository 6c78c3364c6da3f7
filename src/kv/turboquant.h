// TurboQuant (arXiv 2504.19874) for KV-cache head vectors: x (one head, width d) is stored as
// its norm and the codes of u = R x / ||x||, each coordinate of u quantized to the nearest
// centroid of the Lloyd-Max codebook for the coordinate law of a random unit vector in R^d
// (lloyd_max.h). R is a seeded random rotation (rotation.h). Attention never leaves the rotated
// space: <q, x> = <R q, R x>, so a query is rotated once, scored against every stored row from
// codes and norms, the value rows are accumulated in rotated space, and the output is rotated
// back once.
//
// Row layout, for a TurboFormat {dim d, bits_hi on channels [0, n_hi), bits_lo on [n_hi, d)}:
//   codes     ceil((n_hi * bits_hi + (d - n_hi) * bits_lo) / 8) bytes: channel i's code in bits
//             [off_i, off_i + bits_i) of a little-endian bit stream (bit k = byte k/8, bit k%8)
//   [qjl]     d/8 bytes: sign bits of the residual sketch (bit j set: (S r)_j >= 0), then the
//             residual norm ||r|| as IEEE f16 (2 bytes); present when format.qjl
//   norm      ||x|| as IEEE f16 (2 bytes); norms beyond 65504 are stored as 65504
// Bits per element: (n_hi*bits_hi + (d-n_hi)*bits_lo + 16)/d, plus (d + 16)/d with QJL; for
// d = 128: 2.125, 2.625 (2.5-bit split), 3.125, 3.625 (3.5-bit split), 4.125.
//
// QJL (off by default) makes the score an unbiased estimate of <q, x>: with r = u - Q(u) the
// residual and S a seeded d x d matrix of standard normals, the row keeps sign(S r) and ||r||,
// and score adds ||x|| * ||r|| * sqrt(pi/2)/d * <S R q, sign(S r)>. It is for keys: accumulate
// uses the codes only, so store values without it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kv/lloyd_max.h"
#include "kv/rotation.h"

namespace optiq::kv {

struct TurboFormat {
  int64_t dim = 0;      // d: head width; a multiple of 8
  int bits_hi = 4;      // bits per code of channels [0, n_hi), 1..4
  int64_t n_hi = 0;     // channels at bits_hi; a multiple of 8, at most dim
  int bits_lo = 4;      // bits per code of channels [n_hi, dim), 1..4
  bool qjl = false;     // append the 1-bit residual sketch (unbiased scores)

  double bits_per_element() const;
};

// The format of `bits` per channel at width dim: bits 1, 2, 3, 4 are uniform; 2.5 and 3.5 put
// half the channels (dim/2 rounded down to a multiple of 8) at one bit more.
// Throws std::invalid_argument for other bit counts or a dim that is not a multiple of 8.
TurboFormat turbo_format(int64_t dim, double bits, bool qjl = false);

class TurboQuantizer {
 public:
  // Throws std::invalid_argument for a bad format (see TurboFormat) or rotation (rotation.h).
  TurboQuantizer(const TurboFormat& format, RotationKind rotation, uint64_t seed);

  const TurboFormat& format() const { return format_; }
  const Rotation& rotation() const { return rotation_; }
  size_t row_bytes() const { return row_bytes_; }
  // Floats of a prepared query: the rotated query [d], then with QJL its sketch S R q [d].
  int64_t query_floats() const { return format_.qjl ? 2 * format_.dim : format_.dim; }

  // x: [d] f32 -> row: row_bytes() bytes. A zero vector stores norm 0.
  void quantize(const float* x, uint8_t* row) const;
  // row -> x: [d] f32, back in the original (unrotated) space.
  void dequantize(const uint8_t* row, float* x) const;
  // row -> x_rot: [d] f32 in the rotated space (R x as stored, with the QJL correction when the
  // format has it): <prepared query, x_rot> is score(), and unrotate(x_rot) is dequantize().
  void dequantize_rotated(const uint8_t* row, float* x_rot) const;

  // q: [d] -> prepared: [query_floats()]. Once per query; score then reads it.
  void prepare_query(const float* q, float* prepared) const;
  // <q, x> estimated from x's row: ||x|| * sum_i (Rq)_i * centroid(code_i) (+ the QJL term).
  float score(const float* prepared, const uint8_t* row) const;
  // out_rot[i] += weight * ||x|| * centroid(code_i), out_rot: [d] in the rotated space.
  void accumulate(float* out_rot, float weight, const uint8_t* row) const;
  // score() of n_q prepared queries (query_floats() apart) against n rows (row_stride bytes
  // apart), times scale: scores[j * score_stride + p]. Each row's codes are decoded once for
  // all queries (the query heads of a grouped-query attention group).
  void score_rows(const float* prepared, int64_t n_q, const uint8_t* rows, size_t row_stride, int64_t n, float scale,
                  float* scores, int64_t score_stride) const;
  // accumulate() of n rows into n_q outputs: out_rot + j * d += sum_p weights[j * w_stride + p]
  // * ||x_p|| * centroids(row p), each row decoded once for all outputs. Rows without QJL.
  void accumulate_rows(float* out_rot, int64_t n_q, const float* weights, int64_t w_stride, const uint8_t* rows,
                       size_t row_stride, int64_t n) const;
  // out: [d] = R^T out_rot, the inverse rotation (may be the same array).
  void unrotate(const float* out_rot, float* out) const { rotation_.apply_inverse(out_rot, out); }

  // ||x|| as the row stores it.
  float row_norm(const uint8_t* row) const;
  // The codes of `row` mapped to their centroids, in the rotated unit space: u [d]. Without
  // QJL, score() is row_norm * <prepared, u> and accumulate() adds weight * row_norm * u: a
  // caller with several queries per row (grouped-query attention) decodes once and reuses u.
  void decode_unit(const uint8_t* row, float* u) const;

 private:

  TurboFormat format_;
  Rotation rotation_;
  const LloydMaxCodebook* book_hi_;  // codebook of channels [0, n_hi)
  const LloydMaxCodebook* book_lo_;  // codebook of channels [n_hi, d)
  std::vector<float> sketch_;        // QJL: S, row-major [d, d] standard normals; else empty
  size_t code_bytes_ = 0;            // bytes of the code bit stream
  // The section kernels for this CPU (turboquant_kernels.h): AVX2 where available, else scalar.
  float (*score_codes_)(int, const float*, const uint8_t*, const float*, int64_t) = nullptr;
  void (*accumulate_codes_)(int, float*, float, const uint8_t*, const float*, int64_t) = nullptr;
  void (*decode_codes_)(int, float*, const uint8_t*, const float*, int64_t) = nullptr;
  void (*score_rows_)(int, const float*, int64_t, int, const uint8_t*, size_t, int64_t, const float*, int64_t, float*,
                      int64_t) = nullptr;
  void (*accumulate_rows_)(int, float*, int64_t, int, const float*, int64_t, const uint8_t*, size_t, int64_t,
                           const float*, int64_t) = nullptr;
  size_t row_bytes_ = 0;             // bytes of one row
};

// Attention of one query head over n stored positions, in the rotated spaces:
//   out = sum_p softmax_p(scale * score(q, k_p)) * v_p
// keys: row p at k_rows + p * stride; values likewise at v_rows (stride in bytes, so rows of one
// head inside a [n_ctx, n_head_kv] cache are read in place). q: [d], out: [d] f32.
// key_q and value_q may use different rotations; values must be stored without QJL.
void turbo_attention(const TurboQuantizer& key_q, const TurboQuantizer& value_q, const float* q,
                     const uint8_t* k_rows, const uint8_t* v_rows, size_t stride, int64_t n, float scale,
                     float* out);

}  // namespace optiq::kv
