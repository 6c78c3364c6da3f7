// The 32-weight block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL). Without importance weights
// the quantizers are ggml's deterministic `quantize_row_*_ref`; with them, ggml's imatrix-aware
// searches (weight = importance * sqrt(sigma2 + x^2), sigma2 the row's mean square).
#include <cfloat>
#include <cmath>
#include <cstring>

#include "quant/float16.h"
#include "quant/quant_impl.h"

namespace optiq::quant_detail {
namespace {

// Mean square of a row: the sigma2 ggml adds to x^2 in the importance-weighted searches.
float row_sigma2(const float* x, int64_t n) {
  float sum_x2 = 0;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  return sum_x2 / static_cast<float>(n);
}

void imatrix_weights(const float* xb, const float* qw, float sigma2, float* weight) {
  for (int j = 0; j < 32; ++j) weight[j] = qw[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
}

// Nibbles of 32 levels: byte j holds weight j (low) and weight j + 16 (high).
template <class L>
void pack_nibbles(const L* levels, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((levels[j] & 0x0f) | ((levels[j + 16] & 0x0f) << 4));
}

// Bit 4 of each of 32 levels, weight j at bit j, as the little-endian bytes ggml stores.
template <class L>
void pack_high_bits(const L* levels, uint8_t* qh) {
  uint32_t bits = 0;
  for (int j = 0; j < 32; ++j) bits |= static_cast<uint32_t>((levels[j] >> 4) & 1) << j;
  for (int b = 0; b < 4; ++b) qh[b] = static_cast<uint8_t>(bits >> (8 * b));
}

uint32_t load_high_bits(const uint8_t* qh) {
  return qh[0] | (qh[1] << 8) | (qh[2] << 16) | (static_cast<uint32_t>(qh[3]) << 24);
}

// Symmetric ref quantizer: levels 0..2*half-1 with w = d * (q - half), d = max / -half.
void quantize_symmetric_ref(const float* x, int half, uint16_t* d_out, uint8_t* levels) {
  float amax;
  const float d = signed_absmax(x, 32, &amax) / static_cast<float>(-half);
  const float id = d ? 1.0f / d : 0.0f;
  *d_out = f32_to_f16(d);
  for (int j = 0; j < 32; ++j) {
    // (int8_t)(x * id + half + 0.5) then MIN(2 * half - 1, .) as ggml: truncation, not rounding.
    const int q = static_cast<int8_t>(trunc_to_int(x[j] * id + (static_cast<float>(half) + 0.5f)));
    levels[j] = static_cast<uint8_t>(q < 2 * half - 1 ? q : 2 * half - 1);
  }
}

// Asymmetric ref quantizer: w = d * q + min, d = (max - min) / nmax. ggml clamps the 4-bit
// levels with MIN(15, (int8_t)v) but converts the 5-bit ones straight to uint8_t; both kept.
void quantize_affine_ref(const float* x, int nmax, bool clamp, uint16_t* d_out, uint16_t* m_out, uint8_t* levels) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < 32; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / static_cast<float>(nmax);
  const float id = d ? 1.0f / d : 0.0f;
  *d_out = f32_to_f16(d);
  *m_out = f32_to_f16(min);
  for (int j = 0; j < 32; ++j) {
    const float v = (x[j] - min) * id + 0.5f;
    if (clamp) {
      const int q = static_cast<int8_t>(trunc_to_int(v));
      levels[j] = static_cast<uint8_t>(q < nmax ? q : nmax);
    } else {
      levels[j] = static_cast<uint8_t>(trunc_to_int(v));
    }
  }
}

// Q4_x and Q5_x blocks differ only in their level count and in whether bit 4 of each level
// goes to qh.
template <class Block, class L>
void store_levels(const L* levels, Block& b) {
  pack_nibbles(levels, b.qs);
  if constexpr (requires { b.qh; }) pack_high_bits(levels, b.qh);
}

// Q4_0 (half = 8) and Q5_0 (half = 16): w = d * (q - half).
template <class Block>
void quantize_symmetric_blocks(const float* x, Block* y, int64_t n, const float* qw, int half) {
  if (!qw) {
    uint8_t levels[32];
    for (int64_t ib = 0; ib < n / 32; ++ib) {
      quantize_symmetric_ref(x + 32 * ib, half, &y[ib].d, levels);
      store_levels(levels, y[ib]);
    }
    return;
  }
  const float sigma2 = row_sigma2(x, n);
  float weight[32];
  int8_t levels[32];
  for (int64_t ib = 0; ib < n / 32; ++ib) {
    imatrix_weights(x + 32 * ib, qw + 32 * ib, sigma2, weight);
    y[ib].d = f32_to_f16(make_qx_quants(32, half, x + 32 * ib, levels, 1, weight));
    store_levels(levels, y[ib]);
  }
}

// Q4_1 (nmax = 15, levels clamped as ggml does) and Q5_1 (nmax = 31, not clamped): w = d * q + m.
template <class Block>
void quantize_affine_blocks(const float* x, Block* y, int64_t n, const float* qw, int nmax, bool clamp) {
  uint8_t levels[32];
  if (!qw) {
    for (int64_t ib = 0; ib < n / 32; ++ib) {
      quantize_affine_ref(x + 32 * ib, nmax, clamp, &y[ib].d, &y[ib].m, levels);
      store_levels(levels, y[ib]);
    }
    return;
  }
  const float sigma2 = row_sigma2(x, n);
  float weight[32];
  uint8_t aux[32];
  for (int64_t ib = 0; ib < n / 32; ++ib) {
    imatrix_weights(x + 32 * ib, qw + 32 * ib, sigma2, weight);
    float min;
    const float d = make_qkx_quants(32, nmax, x + 32 * ib, weight, levels, &min, aux, -0.9f, 0.05f, 36, false);
    y[ib].d = f32_to_f16(d);
    y[ib].m = f32_to_f16(-min);
    store_levels(levels, y[ib]);
  }
}

}  // namespace

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t n, const float* qw) {
  quantize_symmetric_blocks(x, y, n, qw, 8);
}
void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t n, const float* qw) {
  quantize_symmetric_blocks(x, y, n, qw, 16);
}
void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t n, const float* qw) {
  quantize_affine_blocks(x, y, n, qw, 15, true);
}
void quantize_q5_1(const float* x, BlockQ5_1* y, int64_t n, const float* qw) {
  quantize_affine_blocks(x, y, n, qw, 31, false);
}

void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t ib = 0; ib < n / 32; ++ib) {
    const float* xb = x + 32 * ib;
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = amax > std::fabs(xb[j]) ? amax : std::fabs(xb[j]);  // ggml's MAX: NaN propagates
    const float d = amax / 127;
    const float id = d ? 1.0f / d : 0.0f;
    y[ib].d = f32_to_f16(d);
    for (int j = 0; j < 32; ++j) y[ib].qs[j] = static_cast<int8_t>(trunc_to_int(std::round(xb[j] * id)));
  }
}

void quantize_iq4_nl(const float* x, BlockIQ4_NL* y, int64_t n, const float* qw) {
  for (int64_t ib = 0; ib < n / 32; ++ib)
    quantize_iq4_superblock(32, x + 32 * ib, &y[ib].d, y[ib].qs, nullptr, nullptr, qw ? qw + 32 * ib : nullptr);
}

void quantize_iq4_nl_single_scale(const float* x, BlockIQ4_NL* y, int64_t n) {
  const int8_t* values = kIQ4NLValues;
  for (int64_t ib = 0; ib < n / 32; ++ib) {
    const float* xb = x + 32 * ib;
    std::memset(y[ib].qs, 0, sizeof(y[ib].qs));
    float amax;
    const float max = signed_absmax(xb, 32, &amax);
    if (amax < kGroupMaxEps) {
      y[ib].d = f32_to_f16(0.0f);
      continue;
    }
    // The largest magnitude goes to the table's -127 end (d takes max's opposite sign), and
    // the scale is then refit by weighted least squares (weights x^2) on those levels.
    const float id = 1 / (max / values[0]);
    uint8_t L[32];
    float sumqx = 0, sumq2 = 0;
    for (int j = 0; j < 32; ++j) {
      L[j] = static_cast<uint8_t>(best_index_int8(16, values, id * xb[j]));
      const float q = values[L[j]], w = xb[j] * xb[j];
      sumqx += w * q * xb[j];
      sumq2 += w * q * q;
    }
    y[ib].d = f32_to_f16(sumq2 > 0 ? sumqx / sumq2 : 0.0f);
    pack_nibbles(L, y[ib].qs);
  }
}

void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
  for (int64_t ib = 0; ib < n / 32; ++ib, y += 32) {
    const float d = f16_to_f32(x[ib].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>((x[ib].qs[j] & 0x0f) - 8) * d;
      y[j + 16] = static_cast<float>((x[ib].qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const BlockQ4_1* x, float* y, int64_t n) {
  for (int64_t ib = 0; ib < n / 32; ++ib, y += 32) {
    const float d = f16_to_f32(x[ib].d), m = f16_to_f32(x[ib].m);
    for (int j = 0; j < 16; ++j) {
      y[j] = static_cast<float>(x[ib].qs[j] & 0x0f) * d + m;
      y[j + 16] = static_cast<float>(x[ib].qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const BlockQ5_0* x, float* y, int64_t n) {
  for (int64_t ib = 0; ib < n / 32; ++ib, y += 32) {
    const float d = f16_to_f32(x[ib].d);
    const uint32_t qh = load_high_bits(x[ib].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (x[ib].qs[j] & 0x0f) | (((qh >> j) & 1) << 4);
      const int q1 = (x[ib].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = static_cast<float>(q0 - 16) * d;
      y[j + 16] = static_cast<float>(q1 - 16) * d;
    }
  }
}

void dequantize_q5_1(const BlockQ5_1* x, float* y, int64_t n) {
  for (int64_t ib = 0; ib < n / 32; ++ib, y += 32) {
    const float d = f16_to_f32(x[ib].d), m = f16_to_f32(x[ib].m);
    const uint32_t qh = load_high_bits(x[ib].qh);
    for (int j = 0; j < 16; ++j) {
      const int q0 = (x[ib].qs[j] & 0x0f) | (((qh >> j) & 1) << 4);
      const int q1 = (x[ib].qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
      y[j] = static_cast<float>(q0) * d + m;
      y[j + 16] = static_cast<float>(q1) * d + m;
    }
  }
}

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
  for (int64_t ib = 0; ib < n / 32; ++ib, y += 32) {
    const float d = f16_to_f32(x[ib].d);
    for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(x[ib].qs[j]) * d;
  }
}

void dequantize_iq4_nl(const BlockIQ4_NL* x, float* y, int64_t n) {
  for (int64_t ib = 0; ib < n / 32; ++ib, y += 32) {
    const float d = f16_to_f32(x[ib].d);
    for (int j = 0; j < 16; ++j) {
      y[j] = d * kIQ4NLValues[x[ib].qs[j] & 0x0f];
      y[j + 16] = d * kIQ4NLValues[x[ib].qs[j] >> 4];
    }
  }
}

}  // namespace optiq::quant_detail
