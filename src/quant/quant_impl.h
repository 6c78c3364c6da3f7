// Internal to src/quant: the per-type kernels quantize.cpp dispatches to and the scale searches
// they share (llama.cpp's make_qx_quants family). Not part of the public API.
#pragma once

#include <bit>
#include <cstdint>

#include "quant/blocks.h"

namespace optiq::quant_detail {

inline constexpr float kGroupMaxEps = 1e-15f;  // below this |x| a group is treated as all zeros

// Round to nearest int, ties to even, exactly as ggml's nearest_int (the 1.5 * 2^23 trick);
// valid for |v| <= 2^22, and defined (if meaningless) for Inf/NaN.
inline int nearest_int(float v) {
  const float biased = v + 12582912.0f;
  return static_cast<int>(std::bit_cast<uint32_t>(biased) & 0x007fffffu) - 0x00400000;
}

// C's float-to-int truncation as x86 performs it (cvttss2si): NaN and out-of-range values give
// INT32_MIN instead of undefined behaviour, so NaN input still yields ggml's bytes on x86.
inline int32_t trunc_to_int(float v) {
  if (!(v > -2147483648.0f && v < 2147483648.0f)) return INT32_MIN;
  return static_cast<int32_t>(v);
}

// The value of largest magnitude among x[0..n) (the first on ties, as ggml's searches pick it);
// *amax receives its magnitude.
inline float signed_absmax(const float* x, int n, float* amax) {
  float max = 0;
  *amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = x[i] < 0 ? -x[i] : x[i];
    if (ax > *amax) {
      *amax = ax;
      max = x[i];
    }
  }
  return max;
}

// Symmetric scale search: L[i] in 0..2*nmax-1 (offset nmax); returns the scale d with
// x ~ d * (L - nmax). rmse_type and weights as ggml's make_qx_quants.
float make_qx_quants(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw);
// Asymmetric (scale, min) search: x ~ scale * L - *the_min, L in 0..nmax; tries nstep + 1
// scales (nmax + rmin + rdelta * k) / (max - min). `weights` null means x^2. This is ggml's
// make_qkx2_quants and make_qkx3_quants, which differ only in that default (and in a test that
// is the same for every input).
float make_qkx_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                      uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad);
// Index of the grid value nearest to x in a sorted table of n values (ties to the lower one).
int best_index_int8(int n, const int8_t* values, float x);

// IQ4_NL / IQ4_XS search over one super-block of `super_block` weights in 32-weight blocks
// (ggml's quantize_row_iq4_nl_impl): writes the f16 super-scale *dh, the packed nibbles q4, and
// for super_block > 32 the 6-bit block scales (scales_h, scales_l, else unused). qw: null or
// super_block weights. This is the search llama-quantize runs (ggml's quantize_iq4_nl/_xs).
void quantize_iq4_superblock(int super_block, const float* x, uint16_t* dh, uint8_t* q4, uint16_t* scales_h,
                             uint8_t* scales_l, const float* qw);

// Legacy 32-weight blocks and IQ4_NL (quants_legacy.cpp). n weights, qw null or n weights.
void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t n, const float* qw);
void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t n, const float* qw);
void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t n, const float* qw);
void quantize_q5_1(const float* x, BlockQ5_1* y, int64_t n, const float* qw);
void quantize_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_iq4_nl(const float* x, BlockIQ4_NL* y, int64_t n, const float* qw);
// IQ4_NL with the first scale of the search only (ggml's quantize_row_iq4_nl_ref, ntry = -1):
// what ggml's CPU backend writes when it converts floats into an IQ4_NL tensor.
void quantize_iq4_nl_single_scale(const float* x, BlockIQ4_NL* y, int64_t n);
void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t n);
void dequantize_q4_1(const BlockQ4_1* x, float* y, int64_t n);
void dequantize_q5_0(const BlockQ5_0* x, float* y, int64_t n);
void dequantize_q5_1(const BlockQ5_1* x, float* y, int64_t n);
void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_iq4_nl(const BlockIQ4_NL* x, float* y, int64_t n);

// K-quants and IQ4_XS (quants_k.cpp). n a multiple of 256; qw null or n weights.
void quantize_q2_k(const float* x, BlockQ2_K* y, int64_t n, const float* qw);
void quantize_q3_k(const float* x, BlockQ3_K* y, int64_t n, const float* qw);
void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t n, const float* qw);
void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t n, const float* qw);
void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t n, const float* qw);
void quantize_iq4_xs(const float* x, BlockIQ4_XS* y, int64_t n, const float* qw);
void dequantize_q2_k(const BlockQ2_K* x, float* y, int64_t n);
void dequantize_q3_k(const BlockQ3_K* x, float* y, int64_t n);
void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t n);
void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t n);
void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t n);
void dequantize_iq4_xs(const BlockIQ4_XS* x, float* y, int64_t n);

}  // namespace optiq::quant_detail
