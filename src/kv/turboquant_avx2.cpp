// AVX2 + FMA versions of the TurboQuant section kernels (turboquant_kernels.h). Eight channels
// per step: their code bytes are broadcast into all eight lanes, each lane shifts its own code
// down (lane j by j*bits) and masks it, and the centroid is looked up with a permute of the
// codebook held in registers (16 centroids: two permutes and a blend on the code's top bit).
#include <immintrin.h>

#include "kv/turboquant_kernels.h"

namespace optiq::kv::detail {
namespace {

template <int Bits>
struct Decoder {
  __m256i shifts;  // lane j: j * Bits
  __m256i mask;    // 2^Bits - 1 in every lane
  __m256 low;      // centroids 0..7 (codes beyond 2^Bits - 1 never occur)
  __m256 high;     // centroids 8..15 (Bits = 4 only)

  explicit Decoder(const float* centroids) {
    shifts = _mm256_setr_epi32(0, Bits, 2 * Bits, 3 * Bits, 4 * Bits, 5 * Bits, 6 * Bits, 7 * Bits);
    mask = _mm256_set1_epi32((1 << Bits) - 1);
    if constexpr (Bits < 4) {
      // Only the first 2^Bits lanes exist in the codebook; the others are never indexed.
      const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
      low = _mm256_maskload_ps(centroids, _mm256_cmpgt_epi32(_mm256_set1_epi32(1 << Bits), lanes));
      high = low;
    } else {
      low = _mm256_loadu_ps(centroids);
      high = _mm256_loadu_ps(centroids + 8);
    }
  }

  // The centroids of the 8 channels whose codes start at `codes` (Bits bytes).
  __m256 decode(const uint8_t* codes) const {
    uint32_t word = 0;
    for (int b = 0; b < Bits; ++b) word |= static_cast<uint32_t>(codes[b]) << (8 * b);
    const __m256i idx = _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(word)), shifts), mask);
    const __m256 lo = _mm256_permutevar8x32_ps(low, idx);
    if constexpr (Bits < 4) {
      return lo;
    } else {
      const __m256 hi = _mm256_permutevar8x32_ps(high, idx);
      // Bit 3 of the code moved to the sign bit selects the upper half of the table.
      return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
    }
  }
};

float horizontal_sum(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)));
}

template <int Bits>
float score(const float* q, const uint8_t* codes, const float* centroids, int64_t groups) {
  const Decoder<Bits> dec(centroids);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t g = 0;
  for (; g + 1 < groups; g += 2) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * g), dec.decode(codes + g * Bits), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * g + 8), dec.decode(codes + (g + 1) * Bits), acc1);
  }
  if (g < groups) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + 8 * g), dec.decode(codes + g * Bits), acc0);
  return horizontal_sum(_mm256_add_ps(acc0, acc1));
}

template <int Bits>
void accumulate(float* out, float scale, const uint8_t* codes, const float* centroids, int64_t groups) {
  const Decoder<Bits> dec(centroids);
  const __m256 s = _mm256_set1_ps(scale);
  for (int64_t g = 0; g < groups; ++g)
    _mm256_storeu_ps(out + 8 * g, _mm256_fmadd_ps(s, dec.decode(codes + g * Bits), _mm256_loadu_ps(out + 8 * g)));
}

template <int Bits>
void decode(float* out, const uint8_t* codes, const float* centroids, int64_t groups) {
  const Decoder<Bits> dec(centroids);
  for (int64_t g = 0; g < groups; ++g) _mm256_storeu_ps(out + 8 * g, dec.decode(codes + g * Bits));
}

// Two accumulator sets (even and odd groups) per query, so consecutive fused multiply-adds
// do not wait on each other.
template <int Bits, int NQ>
void score_rows(const float* q, int64_t q_stride, const uint8_t* codes, size_t row_stride, int64_t n,
                const float* centroids, int64_t groups, float* out, int64_t out_stride) {
  const Decoder<Bits> dec(centroids);
  for (int64_t p = 0; p < n; ++p) {
    const uint8_t* c = codes + static_cast<size_t>(p) * row_stride;
    __m256 even[NQ], odd[NQ];
    for (int j = 0; j < NQ; ++j) even[j] = odd[j] = _mm256_setzero_ps();
    int64_t g = 0;
    for (; g + 1 < groups; g += 2) {
      const __m256 v0 = dec.decode(c + g * Bits), v1 = dec.decode(c + (g + 1) * Bits);
      for (int j = 0; j < NQ; ++j) {
        even[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q + j * q_stride + 8 * g), v0, even[j]);
        odd[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q + j * q_stride + 8 * g + 8), v1, odd[j]);
      }
    }
    if (g < groups) {
      const __m256 v0 = dec.decode(c + g * Bits);
      for (int j = 0; j < NQ; ++j) even[j] = _mm256_fmadd_ps(_mm256_loadu_ps(q + j * q_stride + 8 * g), v0, even[j]);
    }
    for (int j = 0; j < NQ; ++j) out[j * out_stride + p] += horizontal_sum(_mm256_add_ps(even[j], odd[j]));
  }
}

// Channels outer, rows inner: each query's 8 output channels stay in registers over all rows
// (two sets, even and odd rows).
template <int Bits, int NQ>
void accumulate_rows(float* out, int64_t out_stride, const float* w, int64_t w_stride, const uint8_t* codes,
                     size_t row_stride, int64_t n, const float* centroids, int64_t groups) {
  const Decoder<Bits> dec(centroids);
  for (int64_t g = 0; g < groups; ++g) {
    __m256 even[NQ], odd[NQ];
    for (int j = 0; j < NQ; ++j) {
      even[j] = _mm256_loadu_ps(out + j * out_stride + 8 * g);
      odd[j] = _mm256_setzero_ps();
    }
    const uint8_t* c = codes + g * Bits;
    int64_t p = 0;
    for (; p + 1 < n; p += 2) {
      const __m256 v0 = dec.decode(c + static_cast<size_t>(p) * row_stride);
      const __m256 v1 = dec.decode(c + static_cast<size_t>(p + 1) * row_stride);
      for (int j = 0; j < NQ; ++j) {
        even[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j * w_stride + p), v0, even[j]);
        odd[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j * w_stride + p + 1), v1, odd[j]);
      }
    }
    if (p < n) {
      const __m256 v0 = dec.decode(c + static_cast<size_t>(p) * row_stride);
      for (int j = 0; j < NQ; ++j) even[j] = _mm256_fmadd_ps(_mm256_broadcast_ss(w + j * w_stride + p), v0, even[j]);
    }
    for (int j = 0; j < NQ; ++j) _mm256_storeu_ps(out + j * out_stride + 8 * g, _mm256_add_ps(even[j], odd[j]));
  }
}

template <int Bits>
void score_rows_bits(const float* q, int64_t q_stride, int n_q, const uint8_t* codes, size_t row_stride, int64_t n,
                     const float* centroids, int64_t groups, float* out, int64_t out_stride) {
  switch (n_q) {
    case 1: return score_rows<Bits, 1>(q, q_stride, codes, row_stride, n, centroids, groups, out, out_stride);
    case 2: return score_rows<Bits, 2>(q, q_stride, codes, row_stride, n, centroids, groups, out, out_stride);
    case 3: return score_rows<Bits, 3>(q, q_stride, codes, row_stride, n, centroids, groups, out, out_stride);
    default: return score_rows<Bits, 4>(q, q_stride, codes, row_stride, n, centroids, groups, out, out_stride);
  }
}

template <int Bits>
void accumulate_rows_bits(float* out, int64_t out_stride, int n_q, const float* w, int64_t w_stride,
                          const uint8_t* codes, size_t row_stride, int64_t n, const float* centroids, int64_t groups) {
  switch (n_q) {
    case 1: return accumulate_rows<Bits, 1>(out, out_stride, w, w_stride, codes, row_stride, n, centroids, groups);
    case 2: return accumulate_rows<Bits, 2>(out, out_stride, w, w_stride, codes, row_stride, n, centroids, groups);
    case 3: return accumulate_rows<Bits, 3>(out, out_stride, w, w_stride, codes, row_stride, n, centroids, groups);
    default: return accumulate_rows<Bits, 4>(out, out_stride, w, w_stride, codes, row_stride, n, centroids, groups);
  }
}

}  // namespace

float score_codes_avx2(int bits, const float* q, const uint8_t* codes, const float* centroids, int64_t groups) {
  switch (bits) {
    case 1: return score<1>(q, codes, centroids, groups);
    case 2: return score<2>(q, codes, centroids, groups);
    case 3: return score<3>(q, codes, centroids, groups);
    default: return score<4>(q, codes, centroids, groups);
  }
}

void accumulate_codes_avx2(int bits, float* out, float scale, const uint8_t* codes, const float* centroids,
                           int64_t groups) {
  switch (bits) {
    case 1: return accumulate<1>(out, scale, codes, centroids, groups);
    case 2: return accumulate<2>(out, scale, codes, centroids, groups);
    case 3: return accumulate<3>(out, scale, codes, centroids, groups);
    default: return accumulate<4>(out, scale, codes, centroids, groups);
  }
}

void decode_codes_avx2(int bits, float* out, const uint8_t* codes, const float* centroids, int64_t groups) {
  switch (bits) {
    case 1: return decode<1>(out, codes, centroids, groups);
    case 2: return decode<2>(out, codes, centroids, groups);
    case 3: return decode<3>(out, codes, centroids, groups);
    default: return decode<4>(out, codes, centroids, groups);
  }
}

void score_rows_avx2(int bits, const float* q, int64_t q_stride, int n_q, const uint8_t* codes, size_t row_stride,
                     int64_t n, const float* centroids, int64_t groups, float* out, int64_t out_stride) {
  switch (bits) {
    case 1: return score_rows_bits<1>(q, q_stride, n_q, codes, row_stride, n, centroids, groups, out, out_stride);
    case 2: return score_rows_bits<2>(q, q_stride, n_q, codes, row_stride, n, centroids, groups, out, out_stride);
    case 3: return score_rows_bits<3>(q, q_stride, n_q, codes, row_stride, n, centroids, groups, out, out_stride);
    default: return score_rows_bits<4>(q, q_stride, n_q, codes, row_stride, n, centroids, groups, out, out_stride);
  }
}

void accumulate_rows_avx2(int bits, float* out, int64_t out_stride, int n_q, const float* w, int64_t w_stride,
                          const uint8_t* codes, size_t row_stride, int64_t n, const float* centroids, int64_t groups) {
  switch (bits) {
    case 1: return accumulate_rows_bits<1>(out, out_stride, n_q, w, w_stride, codes, row_stride, n, centroids, groups);
    case 2: return accumulate_rows_bits<2>(out, out_stride, n_q, w, w_stride, codes, row_stride, n, centroids, groups);
    case 3: return accumulate_rows_bits<3>(out, out_stride, n_q, w, w_stride, codes, row_stride, n, centroids, groups);
    default: return accumulate_rows_bits<4>(out, out_stride, n_q, w, w_stride, codes, row_stride, n, centroids, groups);
  }
}

}  // namespace optiq::kv::detail
