// Reading the packed sub-block scales of the K-quant and IQ4_XS blocks, shared by the
// quantizers (quants_k.cpp) and the dot kernels (dot_scalar.cpp, dot_avx2.cpp):
//   k4_scale_min  the 6-bit scale and min of sub-block j (0..7) of Q4_K/Q5_K (ggml's
//                 get_scale_min_k4 layout: 8 scales and 8 mins in 12 bytes);
//   q3_k_scale    the signed 6-bit scale (-32..31) of sub-block j (0..15) of Q3_K;
//   iq4_xs_scale  the signed scale (-32..31) of 32-weight block j (0..7) of IQ4_XS.
// Internal linkage on purpose: dot_avx2.cpp is compiled with AVX2 enabled, and one shared
// inline copy could end up running AVX2 instructions in the scalar code.
#pragma once

#include <cstdint>

#include "quant/blocks.h"

namespace optiq {
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
}  // namespace optiq
