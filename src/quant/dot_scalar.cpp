// Scalar reference kernels and the activation quantizers. Each dot product sums integer
// products exactly inside a block (or sub-block), then scales the block sum in f32 and adds it
// to an f32 total: the same quantities ggml's kernels combine, in a plain order.
#if defined(__SSE2__)
#include <immintrin.h>  // SSE2 is part of x86-64's baseline, so this needs no run-time check
#endif

#include <cmath>
#include <cstring>

#include "quant/dot_impl.h"
#include "quant/float16.h"
#include "quant/quant_impl.h"

namespace optiq::dot_detail {
namespace {

using quant_detail::nearest_int;

// x86's float-to-int32 conversion in round-to-nearest-even mode (cvtps2dq): out-of-range and
// NaN give INT32_MIN.
int32_t round_to_int32(float v) {
#if defined(__SSE2__)
  return _mm_cvtss_si32(_mm_set_ss(v));  // that instruction itself (the default MXCSR mode)
#else
  if (!(v >= -2147483648.0f && v < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(std::nearbyint(v));
#endif
}

// The saturating int32 -> int8 narrowing of the pack instructions.
int8_t saturate_i8(int32_t v) { return static_cast<int8_t>(v < -128 ? -128 : v > 127 ? 127 : v); }

// Scales one 32-weight block as ggml's AVX2 from_float does; returns d (before f16 rounding)
// and the sum of the int32 levels (before narrowing), writes the levels to qs.
float quantize_block_q8(const float* x, int8_t* qs, int32_t* sum) {
  float amax = 0;
  for (int j = 0; j < 32; ++j) {
    const float a = std::fabs(x[j]);
    amax = a > amax ? a : amax;  // a NaN never wins, as with fmax
  }
  const float d = amax / 127.f;
  const float id = amax != 0.0f ? 127.f / amax : 0.0f;
  *sum = 0;
  for (int j = 0; j < 32; ++j) {
    const int32_t q = round_to_int32(x[j] * id);
    *sum = static_cast<int32_t>(static_cast<uint32_t>(*sum) + static_cast<uint32_t>(q));  // wraps like paddd
    qs[j] = saturate_i8(q);
  }
  return d;
}

// The 4-bit level of weight j (0..31) of a 32-weight block whose qs hold weight j in the low
// nibble of byte j and weight j + 16 in the high nibble.
int nibble(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }
int high_bit_q5(const uint8_t* qh, int j) {
  uint32_t h;
  std::memcpy(&h, qh, 4);
  return static_cast<int>((h >> j) & 1);
}

float dot_f32(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

float dot_f16(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += f16_to_f32(x[i]) * f16_to_f32(y[i]);
  return sum;
}

float dot_bf16(int64_t n, const void* w, const void* a) {
  const uint16_t* x = static_cast<const uint16_t*>(w);
  const uint16_t* y = static_cast<const uint16_t*>(a);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += bf16_to_f32(x[i]) * bf16_to_f32(y[i]);
  return sum;
}

// Legacy 32-weight blocks against Q8_0: sum over blocks of d_w * d_a * sum_j level_j * q_j.
template <typename Block, typename Level>
float dot_legacy_q8_0(int64_t n, const void* w, const void* a, Level level) {
  const Block* x = static_cast<const Block*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < 32; ++j) isum += level(x[b], j) * y[b].qs[j];
    sum += f16_to_f32(x[b].d) * f16_to_f32(y[b].d) * static_cast<float>(isum);
  }
  return sum;
}

// Affine blocks (w = d * q + m) against Q8_1: d_w * d_a * sum_j q_j * q'_j + m * s_a.
template <typename Block, typename Level>
float dot_legacy_q8_1(int64_t n, const void* w, const void* a, Level level) {
  const Block* x = static_cast<const Block*>(w);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t isum = 0;
    for (int j = 0; j < 32; ++j) isum += level(x[b], j) * y[b].qs[j];
    sum += f16_to_f32(x[b].d) * f16_to_f32(y[b].d) * static_cast<float>(isum) +
           f16_to_f32(x[b].m) * f16_to_f32(y[b].s);
  }
  return sum;
}

float dot_q4_0(int64_t n, const void* w, const void* a) {
  return dot_legacy_q8_0<BlockQ4_0>(n, w, a, [](const BlockQ4_0& b, int j) { return nibble(b.qs, j) - 8; });
}
float dot_q5_0(int64_t n, const void* w, const void* a) {
  return dot_legacy_q8_0<BlockQ5_0>(
      n, w, a, [](const BlockQ5_0& b, int j) { return (nibble(b.qs, j) | (high_bit_q5(b.qh, j) << 4)) - 16; });
}
float dot_q8_0(int64_t n, const void* w, const void* a) {
  return dot_legacy_q8_0<BlockQ8_0>(n, w, a, [](const BlockQ8_0& b, int j) { return int{b.qs[j]}; });
}
float dot_iq4_nl(int64_t n, const void* w, const void* a) {
  return dot_legacy_q8_0<BlockIQ4_NL>(n, w, a,
                                      [](const BlockIQ4_NL& b, int j) { return int{kIQ4NLValues[nibble(b.qs, j)]}; });
}
float dot_q4_1(int64_t n, const void* w, const void* a) {
  return dot_legacy_q8_1<BlockQ4_1>(n, w, a, [](const BlockQ4_1& b, int j) { return nibble(b.qs, j); });
}
float dot_q5_1(int64_t n, const void* w, const void* a) {
  return dot_legacy_q8_1<BlockQ5_1>(
      n, w, a, [](const BlockQ5_1& b, int j) { return nibble(b.qs, j) | (high_bit_q5(b.qh, j) << 4); });
}

// K-quants against Q8_K. Per super-block: d_a * (d_w * sum_s scale_s * sum_{j in s} q_j * q'_j
// - dmin_w * sum_s min_s * sum_{j in s} q'_j), the activation sums coming from bsums.
int level_2bit(const uint8_t* qs, int j) { return (qs[32 * (j / 128) + j % 32] >> (2 * ((j % 128) / 32))) & 3; }
int level_4bit_k(const uint8_t* qs, int j) {
  const uint8_t byte = qs[32 * (j / 64) + j % 32];
  return (j % 64) < 32 ? byte & 0xF : byte >> 4;
}

float dot_q2_k(int64_t n, const void* w, const void* a) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t isum = 0, msum = 0;
    for (int s = 0; s < 16; ++s) {
      int32_t part = 0;
      for (int j = 16 * s; j < 16 * s + 16; ++j) part += level_2bit(x[b].qs, j) * y[b].qs[j];
      isum += (x[b].scales[s] & 0xF) * part;
      msum += (x[b].scales[s] >> 4) * y[b].bsums[s];
    }
    sum += y[b].d * (f16_to_f32(x[b].d) * static_cast<float>(isum) - f16_to_f32(x[b].dmin) * static_cast<float>(msum));
  }
  return sum;
}

float dot_q3_k(int64_t n, const void* w, const void* a) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t isum = 0;
    for (int s = 0; s < 16; ++s) {
      int32_t part = 0;
      for (int j = 16 * s; j < 16 * s + 16; ++j) {
        const int high = (x[b].hmask[j % 32] >> (j / 32)) & 1;
        part += (level_2bit(x[b].qs, j) - (high ? 0 : 4)) * y[b].qs[j];
      }
      isum += q3_k_scale(x[b].scales, s) * part;
    }
    sum += y[b].d * f16_to_f32(x[b].d) * static_cast<float>(isum);
  }
  return sum;
}

// Q4_K and Q5_K: 8 sub-blocks of 32 with 6-bit scales and mins.
template <typename Block, typename Level>
float dot_k4_family(int64_t n, const void* w, const void* a, Level level) {
  const Block* x = static_cast<const Block*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t isum = 0, msum = 0;
    for (int s = 0; s < 8; ++s) {
      int sc, m;
      k4_scale_min(x[b].scales, s, &sc, &m);
      int32_t part = 0;
      for (int j = 32 * s; j < 32 * s + 32; ++j) part += level(x[b], j) * y[b].qs[j];
      isum += sc * part;
      msum += m * (y[b].bsums[2 * s] + y[b].bsums[2 * s + 1]);
    }
    sum += y[b].d * (f16_to_f32(x[b].d) * static_cast<float>(isum) - f16_to_f32(x[b].dmin) * static_cast<float>(msum));
  }
  return sum;
}

float dot_q4_k(int64_t n, const void* w, const void* a) {
  return dot_k4_family<BlockQ4_K>(n, w, a, [](const BlockQ4_K& b, int j) { return level_4bit_k(b.qs, j); });
}
float dot_q5_k(int64_t n, const void* w, const void* a) {
  return dot_k4_family<BlockQ5_K>(n, w, a, [](const BlockQ5_K& b, int j) {
    return level_4bit_k(b.qs, j) | (((b.qh[j % 32] >> (j / 32)) & 1) << 4);
  });
}

float dot_q6_k(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t isum = 0;
    for (int s = 0; s < 16; ++s) {
      int32_t part = 0;
      for (int j = 16 * s; j < 16 * s + 16; ++j) {
        const int c = j / 128, g = (j % 128) / 32, l = j % 32;
        const uint8_t byte = x[b].ql[64 * c + 32 * (g & 1) + l];
        const int low = g >= 2 ? byte >> 4 : byte & 0xF;
        part += ((low | (((x[b].qh[32 * c + l] >> (2 * g)) & 3) << 4)) - 32) * y[b].qs[j];
      }
      isum += x[b].scales[s] * part;
    }
    sum += y[b].d * f16_to_f32(x[b].d) * static_cast<float>(isum);
  }
  return sum;
}

float dot_iq4_xs(int64_t n, const void* w, const void* a) {
  const BlockIQ4_XS* x = static_cast<const BlockIQ4_XS*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int32_t isum = 0;
    for (int s = 0; s < 8; ++s) {
      int32_t part = 0;
      for (int j = 0; j < 32; ++j) part += kIQ4NLValues[nibble(x[b].qs + 16 * s, j)] * y[b].qs[32 * s + j];
      isum += iq4_xs_scale(x[b], s) * part;
    }
    sum += y[b].d * f16_to_f32(x[b].d) * static_cast<float>(isum);
  }
  return sum;
}

}  // namespace

VecDotFn scalar_kernel(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::F32: return dot_f32;
    case GgmlType::F16: return dot_f16;
    case GgmlType::BF16: return dot_bf16;
    case GgmlType::Q4_0: return dot_q4_0;
    case GgmlType::Q4_1: return dot_q4_1;
    case GgmlType::Q5_0: return dot_q5_0;
    case GgmlType::Q5_1: return dot_q5_1;
    case GgmlType::Q8_0: return dot_q8_0;
    case GgmlType::IQ4_NL: return dot_iq4_nl;
    case GgmlType::Q2_K: return dot_q2_k;
    case GgmlType::Q3_K: return dot_q3_k;
    case GgmlType::Q4_K: return dot_q4_k;
    case GgmlType::Q5_K: return dot_q5_k;
    case GgmlType::Q6_K: return dot_q6_k;
    case GgmlType::IQ4_XS: return dot_iq4_xs;
    default: return nullptr;
  }
}

void quantize_act_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t sum;
    y[b].d = f32_to_f16(quantize_block_q8(x + 32 * b, y[b].qs, &sum));
  }
}

void quantize_act_q8_1(const float* x, BlockQ8_1* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t sum;
    const float d = quantize_block_q8(x + 32 * b, y[b].qs, &sum);
    y[b].d = f32_to_f16(d);
    y[b].s = f32_to_f16(d * static_cast<float>(sum));
  }
}

void quantize_act_q8_k(const float* x, BlockQ8_K* y, int64_t n) {
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < kQK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0) {
      std::memset(&y[b], 0, sizeof(BlockQ8_K));
      continue;
    }
    // -127 / max rather than 127 / amax: the value of largest magnitude always becomes -127,
    // which ggml's IQ2 kernels rely on; optiq keeps the same levels.
    const float iscale = -127.f / max;
    for (int j = 0; j < kQK_K; ++j) {
      const int v = nearest_int(iscale * x[j]);
      y[b].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += y[b].qs[16 * g + j];
      y[b].bsums[g] = static_cast<int16_t>(sum);
    }
    y[b].d = 1 / iscale;
  }
}

}  // namespace optiq::dot_detail
