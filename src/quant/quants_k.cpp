// 256-weight super-block types: the K-quants (Q2_K..Q6_K) and IQ4_XS. Without importance
// weights the K-quant quantizers are ggml's `quantize_row_*_K_ref`; with them, ggml's imatrix
// searches (`quantize_row_*_K_impl`), with sigma2 taken per super-block as ggml does.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "quant/float16.h"
#include "quant/quant_impl.h"
#include "quant/scale_unpack.h"

namespace optiq::quant_detail {
namespace {

constexpr float kGroupMaxEps = 1e-15f;

int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// 256 levels of 0..3 into 64 bytes (the layout in blocks.h).
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

int level_2bit(const uint8_t* qs, int j) { return (qs[32 * (j / 128) + j % 32] >> (2 * ((j % 128) / 32))) & 3; }

// Non-negative scale search for sub-block scales/mins (ggml's make_qp_quants): L in 0..nmax,
// returns d with x ~ d * L, minimizing the error weighted by `w`.
float make_qp_quants(int n, int nmax, const float* x, uint8_t* L, const float* w) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
  if (max < kGroupMaxEps) {
    std::memset(L, 0, n);
    return 0.0f;
  }
  float iscale = nmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * L[i];
    best_mse += w[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * is + nmax) / max;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
      const float diff = x[i] - scale_is * l;
      mse += w[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    L[i] = static_cast<uint8_t>(l);
    sumlx += w[i] * x[i] * l;
    suml2 += w[i] * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      float slx = sumlx - w[i] * x[i] * L[i];
      float sl2 = suml2 - w[i] * L[i] * L[i];
      if (slx > 0 && sl2 > 0) {
        const int new_l = std::min(nmax, nearest_int(x[i] * sl2 / slx));
        if (new_l != L[i]) {
          slx += w[i] * x[i] * new_l;
          sl2 += w[i] * new_l * new_l;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<uint8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Q3_K's unweighted symmetric search (ggml's make_q3_quants with do_rmse): L in 0..2*nmax-1,
// x ~ d * (L - nmax), refined one level at a time under weights x^2.
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = signed_absmax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::memset(L, 0, n);
    return 0.0f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = clamp_int(nearest_int(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        const int new_l = clamp_int(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

float superblock_sum_x2(const float* x) {
  float s = 0;
  for (int j = 0; j < kQK_K; ++j) s += x[j] * x[j];
  return s;
}

// ---- Q2_K

// Final 2-bit levels for the stored (rounded) scales and mins, then packing.
void finish_q2_k(const float* x, BlockQ2_K& b, uint8_t* L) {
  const float d_all = f16_to_f32(b.d), m_all = f16_to_f32(b.dmin);
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = d_all * (b.scales[j] & 0xF);
    if (!d) continue;
    const float m = m_all * (b.scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<uint8_t>(clamp_int(nearest_int((x[16 * j + ii] + m) / d), 0, 3));
  }
  pack_2bit(L, b.qs);
}

void quantize_q2_k_ref(const float* x, BlockQ2_K& b) {
  uint8_t L[kQK_K], aux[16];
  float weights[16], mins[kQK_K / 16], scales[kQK_K / 16];
  constexpr float q4scale = 15.0f;
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < kQK_K / 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    scales[j] = make_qkx_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], aux, -0.5f, 0.1f, 15, true);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  if (max_scale > 0) {
    const float iscale = q4scale / max_scale;
    for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
    b.d = f32_to_f16(max_scale / q4scale);
  } else {
    std::memset(b.scales, 0, sizeof(b.scales));
    b.d = f32_to_f16(0.0f);
  }
  if (max_min > 0) {
    const float iscale = q4scale / max_min;
    for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] |= static_cast<uint8_t>(nearest_int(iscale * mins[j]) << 4);
    b.dmin = f32_to_f16(max_min / q4scale);
  } else {
    b.dmin = f32_to_f16(0.0f);
  }
  finish_q2_k(x, b, L);
}

void quantize_q2_k_imatrix(const float* x, BlockQ2_K& b, const float* qw) {
  uint8_t L[kQK_K], aux[16], Ls[kQK_K / 16], Lm[kQK_K / 16];
  float weight[16], mins[kQK_K / 16], scales[kQK_K / 16], sw[kQK_K / 16] = {};
  const float sigma2 = superblock_sum_x2(x) / kQK_K;
  for (int j = 0; j < kQK_K / 16; ++j) {
    for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    for (int l = 0; l < 16; ++l) sw[j] += weight[l];
    scales[j] = make_qkx_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], aux, -0.9f, 0.05f, 36, false);
  }
  b.d = f32_to_f16(make_qp_quants(kQK_K / 16, 15, scales, Ls, sw));
  b.dmin = f32_to_f16(make_qp_quants(kQK_K / 16, 15, mins, Lm, sw));
  for (int j = 0; j < kQK_K / 16; ++j) b.scales[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
  finish_q2_k(x, b, L);
}

// ---- Q3_K

// Stores 16 signed 6-bit sub-block scales given as 0..63 (offset 32) into the 12 scale bytes.
void pack_q3_scales(const int* ls, uint8_t* scales) {
  std::memset(scales, 0, 12);
  for (int j = 0; j < 16; ++j) {
    int l = ls[j];
    if (j < 8) scales[j] = static_cast<uint8_t>(l & 0xF); else scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
    l >>= 4;
    scales[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
  }
}

void finish_q3_k(const float* x, BlockQ3_K& b, int8_t* L) {
  const float d_all = f16_to_f32(b.d);
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = d_all * static_cast<float>(q3_k_scale(b.scales, j));
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
  }
  // Bit 2 of level j goes to hmask[j % 32], bit j / 32; the low 2 bits to qs.
  std::memset(b.hmask, 0, sizeof(b.hmask));
  uint8_t low[kQK_K];
  for (int j = 0; j < kQK_K; ++j) {
    if (L[j] > 3) b.hmask[j % 32] |= static_cast<uint8_t>(1 << (j / 32));
    low[j] = static_cast<uint8_t>(L[j] > 3 ? L[j] - 4 : L[j]);
  }
  pack_2bit(low, b.qs);
}

void quantize_q3_k_ref(const float* x, BlockQ3_K& b) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  float max_scale = 0, amax = 0;
  for (int j = 0; j < kQK_K / 16; ++j) {
    scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
    if (std::fabs(scales[j]) > amax) {
      amax = std::fabs(scales[j]);
      max_scale = scales[j];
    }
  }
  if (max_scale) {
    const float iscale = -32.0f / max_scale;
    int ls[16];
    // ggml stores nearest_int into an int8_t before clamping: keep that wrap.
    for (int j = 0; j < 16; ++j) ls[j] = clamp_int(static_cast<int8_t>(nearest_int(iscale * scales[j])), -32, 31) + 32;
    pack_q3_scales(ls, b.scales);
    b.d = f32_to_f16(1 / iscale);
  } else {
    std::memset(b.scales, 0, sizeof(b.scales));
    b.d = f32_to_f16(0.0f);
  }
  finish_q3_k(x, b, L);
}

void quantize_q3_k_imatrix(const float* x, BlockQ3_K& b, const float* qw) {
  int8_t L[kQK_K], Ls[kQK_K / 16];
  float scales[kQK_K / 16], weight[16], sw[kQK_K / 16];
  const float sigma2 = 2 * superblock_sum_x2(x) / kQK_K;
  for (int j = 0; j < kQK_K / 16; ++j) {
    for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 16; ++l) sumw += weight[l];
    sw[j] = sumw;
    scales[j] = make_qx_quants(16, 4, x + 16 * j, L + 16 * j, 1, weight);
  }
  const float d_block = make_qx_quants(kQK_K / 16, 32, scales, Ls, 1, sw);
  int ls[16];
  for (int j = 0; j < 16; ++j) ls[j] = Ls[j];
  pack_q3_scales(ls, b.scales);
  b.d = f32_to_f16(d_block);
  finish_q3_k(x, b, L);
}

// ---- Q4_K

// 8 six-bit scales and mins into 12 bytes (ggml's get_scale_min_k4 layout).
void pack_k4_scales(const uint8_t* ls, const uint8_t* lm, uint8_t* q) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      q[j] = ls[j];
      q[j + 4] = lm[j];
    } else {
      q[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      q[j - 4] |= static_cast<uint8_t>((ls[j] >> 4) << 6);
      q[j] |= static_cast<uint8_t>((lm[j] >> 4) << 6);
    }
  }
}

// Levels 0..nmax of each 32-weight sub-block for the stored scales and mins.
void requantize_k4(const float* x, uint16_t d16, uint16_t dmin16, const uint8_t* scales, int nmax, uint8_t* L) {
  for (int j = 0; j < kQK_K / 32; ++j) {
    int sc, m;
    k4_scale_min(scales, j, &sc, &m);
    const float d = f16_to_f32(d16) * sc;
    if (!d) continue;
    const float dm = f16_to_f32(dmin16) * m;
    for (int ii = 0; ii < 32; ++ii) L[32 * j + ii] = static_cast<uint8_t>(clamp_int(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
  }
}

// Unweighted sub-block search shared by Q4_K and Q5_K refs: scales and mins of 8 sub-blocks
// (make_qkx2_quants trying nstep + 1 scales from rmin), then 6-bit codes under max/63
// super-scales.
void k4_ref_scales(const float* x, int nmax, float rmin, int nstep, uint8_t* L, uint8_t* packed, uint16_t* d,
                   uint16_t* dmin) {
  uint8_t aux[32], ls[8], lm[8];
  float weights[32], mins[8], scales[8];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], aux, rmin, 0.1f, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  for (int j = 0; j < 8; ++j) {
    // ggml stores nearest_int in a uint8_t, then takes MIN(63, .).
    ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
    lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
  }
  pack_k4_scales(ls, lm, packed);
  *d = f32_to_f16(max_scale / 63.0f);
  *dmin = f32_to_f16(max_min / 63.0f);
}

// Importance-weighted variant shared by Q4_K and Q5_K.
void k4_imatrix_scales(const float* x, const float* qw, int nmax, uint8_t* L, uint8_t* packed, uint16_t* d,
                       uint16_t* dmin) {
  uint8_t aux[32], ls[8], lm[8];
  float weights[32], sw[8], mins[8], scales[8];
  const float sigma2 = 2 * superblock_sum_x2(x) / kQK_K;
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
    float sumw = 0;
    for (int l = 0; l < 32; ++l) sumw += weights[l];
    sw[j] = sumw;
    scales[j] = make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], aux, -0.9f, 0.05f, 36, false);
  }
  const float d_block = make_qp_quants(8, 63, scales, ls, sw);
  const float m_block = make_qp_quants(8, 63, mins, lm, sw);
  pack_k4_scales(ls, lm, packed);
  *d = f32_to_f16(d_block);
  *dmin = f32_to_f16(m_block);
}

void quantize_q6_k_block(const float* x, BlockQ6_K& b, const float* qw) {
  int8_t L[kQK_K];
  float scales[kQK_K / 16];
  float max_scale = 0, max_abs_scale = 0;
  for (int ib = 0; ib < kQK_K / 16; ++ib) {
    // ggml passes the importance straight through as weights here (no sigma2 term).
    scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, 1, qw ? qw + 16 * ib : nullptr);
    if (std::fabs(scales[ib]) > max_abs_scale) {
      max_abs_scale = std::fabs(scales[ib]);
      max_scale = scales[ib];
    }
  }
  if (max_abs_scale < kGroupMaxEps) {
    std::memset(&b, 0, sizeof(b));
    b.d = f32_to_f16(0.0f);
    return;
  }
  const float iscale = -128.0f / max_scale;
  b.d = f32_to_f16(1 / iscale);
  for (int ib = 0; ib < kQK_K / 16; ++ib) b.scales[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  for (int j = 0; j < kQK_K / 16; ++j) {
    const float d = f16_to_f32(b.d) * b.scales[j];
    if (!d) continue;
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<int8_t>(clamp_int(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
  }
  for (int c = 0; c < 2; ++c) {
    const int8_t* Lc = L + 128 * c;
    uint8_t* ql = b.ql + 64 * c;
    for (int l = 0; l < 32; ++l) {
      ql[l] = static_cast<uint8_t>((Lc[l] & 0xF) | ((Lc[l + 64] & 0xF) << 4));
      ql[l + 32] = static_cast<uint8_t>((Lc[l + 32] & 0xF) | ((Lc[l + 96] & 0xF) << 4));
      b.qh[32 * c + l] = static_cast<uint8_t>((Lc[l] >> 4) | ((Lc[l + 32] >> 4) << 2) | ((Lc[l + 64] >> 4) << 4) | ((Lc[l + 96] >> 4) << 6));
    }
  }
}

// Q4_K and Q5_K share everything but the level count and the packing: 8 sub-blocks of 32 with
// 6-bit scales and mins, found by ggml's searches (ref: rmin, nstep as its quantize_row_q*_K_ref
// passes them), then every weight requantized against the rounded scales into L.
template <class Block>
void k4_levels(const float* xb, const float* qw, int nmax, float rmin, int nstep, uint8_t* L, Block& b) {
  std::memset(b.scales, 0, sizeof(b.scales));
  if (qw) k4_imatrix_scales(xb, qw, nmax, L, b.scales, &b.d, &b.dmin);
  else k4_ref_scales(xb, nmax, rmin, nstep, L, b.scales, &b.d, &b.dmin);
  requantize_k4(xb, b.d, b.dmin, b.scales, nmax, L);
}

}  // namespace

void quantize_q2_k(const float* x, BlockQ2_K* y, int64_t n, const float* qw) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    if (qw) quantize_q2_k_imatrix(x + kQK_K * i, y[i], qw + kQK_K * i);
    else quantize_q2_k_ref(x + kQK_K * i, y[i]);
  }
}

void quantize_q3_k(const float* x, BlockQ3_K* y, int64_t n, const float* qw) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    if (qw) quantize_q3_k_imatrix(x + kQK_K * i, y[i], qw + kQK_K * i);
    else quantize_q3_k_ref(x + kQK_K * i, y[i]);
  }
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t n, const float* qw) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    BlockQ4_K& b = y[i];
    k4_levels(x + kQK_K * i, qw ? qw + kQK_K * i : nullptr, 15, -1.0f, 20, L, b);
    for (int j = 0; j < kQK_K; j += 64)
      for (int l = 0; l < 32; ++l) b.qs[j / 2 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
  }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t n, const float* qw) {
  uint8_t L[kQK_K];
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    BlockQ5_K& b = y[i];
    k4_levels(x + kQK_K * i, qw ? qw + kQK_K * i : nullptr, 31, -0.5f, 15, L, b);
    std::memset(b.qh, 0, sizeof(b.qh));
    for (int j = 0; j < kQK_K; ++j)
      if (L[j] > 15) b.qh[j % 32] |= static_cast<uint8_t>(1 << (j / 32));
    for (int j = 0; j < kQK_K; j += 64)
      for (int l = 0; l < 32; ++l) b.qs[j / 2 + l] = static_cast<uint8_t>((L[j + l] & 0xF) | ((L[j + l + 32] & 0xF) << 4));
  }
}

void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t n, const float* qw) {
  for (int64_t i = 0; i < n / kQK_K; ++i) quantize_q6_k_block(x + kQK_K * i, y[i], qw ? qw + kQK_K * i : nullptr);
}

void quantize_iq4_xs(const float* x, BlockIQ4_XS* y, int64_t n, const float* qw) {
  for (int64_t i = 0; i < n / kQK_K; ++i)
    quantize_iq4_superblock(kQK_K, x + kQK_K * i, &y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l,
                            qw ? qw + kQK_K * i : nullptr);
}

void dequantize_q2_k(const BlockQ2_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i, y += kQK_K) {
    const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
    for (int j = 0; j < kQK_K; ++j) {
      const uint8_t sc = x[i].scales[j / 16];
      const float dl = d * (sc & 0xF), ml = dmin * (sc >> 4);
      y[j] = dl * static_cast<float>(level_2bit(x[i].qs, j)) - ml;
    }
  }
}

void dequantize_q3_k(const BlockQ3_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i, y += kQK_K) {
    const float d_all = f16_to_f32(x[i].d);
    for (int j = 0; j < kQK_K; ++j) {
      const float dl = d_all * static_cast<float>(q3_k_scale(x[i].scales, j / 16));
      const int high = (x[i].hmask[j % 32] >> (j / 32)) & 1;
      y[j] = dl * static_cast<float>(level_2bit(x[i].qs, j) - (high ? 0 : 4));
    }
  }
}

void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i, y += kQK_K) {
    const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
    for (int j = 0; j < kQK_K; ++j) {
      int sc, m;
      k4_scale_min(x[i].scales, j / 32, &sc, &m);
      const uint8_t byte = x[i].qs[32 * (j / 64) + j % 32];
      const int q = (j % 64) < 32 ? byte & 0xF : byte >> 4;
      y[j] = d * sc * static_cast<float>(q) - dmin * m;
    }
  }
}

void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i, y += kQK_K) {
    const float d = f16_to_f32(x[i].d), dmin = f16_to_f32(x[i].dmin);
    for (int j = 0; j < kQK_K; ++j) {
      int sc, m;
      k4_scale_min(x[i].scales, j / 32, &sc, &m);
      const uint8_t byte = x[i].qs[32 * (j / 64) + j % 32];
      const int q = ((j % 64) < 32 ? byte & 0xF : byte >> 4) + (((x[i].qh[j % 32] >> (j / 32)) & 1) ? 16 : 0);
      y[j] = d * sc * static_cast<float>(q) - dmin * m;
    }
  }
}

void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i, y += kQK_K) {
    const float d = f16_to_f32(x[i].d);
    for (int j = 0; j < kQK_K; ++j) {
      const int c = j / 128, g = (j % 128) / 32, l = j % 32;
      const uint8_t byte = x[i].ql[64 * c + 32 * (g & 1) + l];
      const int low = g >= 2 ? byte >> 4 : byte & 0xF;
      const int q = (low | (((x[i].qh[32 * c + l] >> (2 * g)) & 3) << 4)) - 32;
      y[j] = d * x[i].scales[j / 16] * static_cast<float>(q);
    }
  }
}

void dequantize_iq4_xs(const BlockIQ4_XS* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n / kQK_K; ++i) {
    const float d = f16_to_f32(x[i].d);
    for (int ib = 0; ib < kQK_K / 32; ++ib, y += 32) {
      const float dl = d * static_cast<float>(iq4_xs_scale(x[i], ib));
      const uint8_t* qs = x[i].qs + 16 * ib;
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * kIQ4NLValues[qs[j] & 0xf];
        y[j + 16] = dl * kIQ4NLValues[qs[j] >> 4];
      }
    }
  }
}

}  // namespace optiq::quant_detail
