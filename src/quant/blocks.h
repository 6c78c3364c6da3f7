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

// K-quants: 256-weight super-blocks of 16- or 32-weight sub-blocks whose scales are themselves
// quantized under f16 super-scales. Level j of a 2-bit qs array: byte 32 * (j / 128) + j % 32,
// bits 2 * ((j % 128) / 32).

// 2.625 bpw: w = d * (scales[s] & 15) * q - dmin * (scales[s] >> 4), q in 0..3, s = j / 16.
struct BlockQ2_K {
  uint8_t scales[kQK_K / 16];
  uint8_t qs[kQK_K / 4];
  uint16_t d, dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// 3.4375 bpw: w = d * (sc[s] - 32) * (q - 4), q in 0..7: 2 low bits in qs, bit 2 of weight j
// in hmask[j % 32] bit j / 32; sc[s] 6 bits: low nibble in scales[s % 8] (s >= 8: high
// nibble), top 2 bits in scales[8 + s % 4] bits 2 * (s / 4).
struct BlockQ3_K {
  uint8_t hmask[kQK_K / 8];
  uint8_t qs[kQK_K / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// 4.5 bpw: w = d * sc[s] * q - dmin * m[s], q in 0..15, s = j / 32; 6-bit sc/m packed in
// `scales` (ggml's get_scale_min_k4). Byte 32 * (j / 64) + j % 32 holds weight j, low nibble
// for j % 64 < 32.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// 5.5 bpw: as Q4_K with q in 0..31; bit 4 of weight j in qh[j % 32] bit j / 32.
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// 6.5625 bpw: w = d * scales[j / 16] * (q - 32), q in 0..63. For weight j = 128c + 32g + l:
// low nibble in ql[64c + 32(g & 1) + l] (high nibble if g >= 2), top 2 bits in
// qh[32c + l] bits 2g.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// 4.25 bpw: w = d * (ls[b] - 32) * kIQ4NLValues[q], b = j / 32; 6-bit ls: low nibble in
// scales_l[b / 2] (high nibble for odd b), top 2 bits in scales_h bits 2b. qs as 8 IQ4_NL blocks.
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;
  uint8_t scales_l[kQK_K / 64];
  uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

// Activation blocks: the dot-product partners of the weight blocks above (ggml's vec_dot
// types). ggml's CPU backend quantizes each activation row into one of these before the dot
// products; they are never stored in model files.

// 9 bpw: a = d * q, q in -127..127, with s = d * sum(q) rounded to f16 (the weight's min term
// of Q4_1/Q5_1 multiplies s instead of summing the activations again).
struct BlockQ8_1 {
  uint16_t d, s;
  int8_t qs[kQK8_0];
};
static_assert(sizeof(BlockQ8_1) == 36);

// 9.125 bpw: a = d * q, q in -127..127, d an f32; bsums[g] = sum of qs[16g .. 16g + 15] (the
// K-quants' min terms and level offsets need the sum of each 16-weight group).
struct BlockQ8_K {
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

}  // namespace optiq
