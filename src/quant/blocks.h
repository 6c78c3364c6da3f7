// ggml's quantized block layouts, byte for byte (llama.cpp ggml/src/ggml-common.h). A row of n
// weights is n / block_elems consecutive blocks; scales are IEEE halves stored as raw uint16_t.
// Each struct has no padding: the static_asserts pin the sizes ggml reads from GGUF files.
#pragma once

#include <cstdint>

namespace optiq {

inline constexpr int kQK4_0 = 32, kQK4_1 = 32, kQK5_0 = 32, kQK5_1 = 32, kQK8_0 = 32, kQK4_NL = 32;
inline constexpr int kQK_K = 256;  // K-quant super-block
inline constexpr int kKScaleBytes = 12;  // Q4_K/Q5_K: 8 scales + 8 mins, 6 bits each

// 4.5 bpw: w = d * (q - 8), q in 0..15. qs[j] low nibble is weight j, high nibble weight j + 16.
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQK4_0 / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// 5 bpw: w = d * q + m, q in 0..15; nibble order as Q4_0.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQK4_1 / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// 5.5 bpw: w = d * (q - 16), q in 0..31; low 4 bits as Q4_0, bit 4 of weight j is bit j of qh
// (qh is a little-endian uint32 stored as bytes, so the block is 2-byte aligned).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQK5_0 / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// 6 bpw: w = d * q + m, q in 0..31; bits as Q5_0.
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK5_1 / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// 8.5 bpw: w = d * q, q in -127..127.
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_0) == 34);

// 4.5 bpw: w = d * kIQ4NLValues[q], q in 0..15; nibble order as Q4_0.
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQK4_NL / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// The non-linear 4-bit grid of IQ4_NL and IQ4_XS (ggml's kvalues_iq4nl).
inline constexpr int8_t kIQ4NLValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

}  // namespace optiq
