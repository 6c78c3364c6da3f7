// Internal to src/quant: the per-instruction-set kernel tables dot.cpp dispatches to, and the
// activation quantizers. Not part of the public API.
#pragma once

#include <cstdint>

#include "io/ggml_type.h"
#include "quant/blocks.h"
#include "quant/dot.h"

namespace optiq::dot_detail {

// The scalar reference kernel for a weight type (dot_scalar.cpp); null when there is none.
VecDotFn scalar_kernel(GgmlType weight_type);
// The AVX2+FMA+F16C kernel (dot_avx2.cpp, compiled with those instructions enabled); null when
// there is none. Call only after checking the CPU has them: even this lookup may use them.
VecDotFn avx2_kernel(GgmlType weight_type);

// Activation quantizers, n a multiple of the block (dot_scalar.cpp). The rounding is ggml's
// CPU from_float on AVX2: Q8_0/Q8_1 round x * 127 / amax half to even; Q8_K is ggml's
// reference (nearest_int of x * -127 / max, max the signed value of largest magnitude).
void quantize_act_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_act_q8_1(const float* x, BlockQ8_1* y, int64_t n);
void quantize_act_q8_k(const float* x, BlockQ8_K* y, int64_t n);

// Unpacking shared by the scalar kernels and tests: the 6-bit scale and min of sub-block j
// (0..7) of Q4_K/Q5_K, the signed 6-bit scale (-32..31) of sub-block j (0..15) of Q3_K, and the
// signed scale (-32..31) of 32-weight block j (0..7) of IQ4_XS. Internal linkage on purpose:
// dot_avx2.cpp is compiled with AVX2 enabled, and one shared inline copy could end up running
// AVX2 instructions in the scalar path.
namespace {
inline void k4_scale_min(const uint8_t* scales, int j, int* sc, int* m) {
  if (j < 4) {
    *sc = scales[j] & 63;
    *m = scales[j + 4] & 63;
  } else {
    *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
    *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
  }
}
inline int q3_k_scale(const uint8_t* scales, int j) {
  const int lo = j < 8 ? scales[j] & 0xF : scales[j - 8] >> 4;
  return (lo | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}
inline int iq4_xs_scale(const BlockIQ4_XS& b, int j) {
  return (((b.scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | (((b.scales_h >> (2 * j)) & 3) << 4)) - 32;
}
}  // namespace

}  // namespace optiq::dot_detail
