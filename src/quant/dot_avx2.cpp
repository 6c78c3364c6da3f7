// AVX2 + FMA + F16C dot kernels and activation quantizers. CMakeLists.txt compiles this file
// alone with those instructions enabled; the rest of optiq stays portable, and dot.cpp calls in
// here only after cpuid says the CPU has them. Everything here is file-local except the entry
// points dot_impl.h declares: an inline function from a shared header compiled in this file
// could be picked by the linker for the whole program and run AVX2 code on a CPU without it, so
// only headers with plain declarations, structs and constants are included.
//
// Integer sums are exact, as in the scalar kernels; only the f32 accumulation order differs
// (eight lanes, then a horizontal sum).
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "quant/dot_impl.h"

namespace optiq::dot_detail {
namespace {

float f16(uint16_t h) { return _cvtsh_ss(h); }

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

int32_t hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(s);
}

__m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// 16 bytes of packed nibbles -> 32 bytes: byte j < 16 is the low nibble of byte j, byte
// j >= 16 the high nibble of byte j - 16 (the legacy blocks' weight order).
__m256i unpack_nibbles(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(q, 4), q);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}

// A 32-bit mask (bit j for weight j) -> 32 bytes, byte j = `value` where bit j is set, else 0.
__m256i expand_bits(uint32_t bits, char value) {
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(static_cast<int>(bits)),
      _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0x0000000000000000));
  const __m256i bit = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201));
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(value));
}

// Pairwise products of signed bytes summed into 16 int16: |x| times y with x's sign, since
// maddubs takes one unsigned operand. Exact while |x| <= 128 and y > -128 (activations never
// hold -128).
__m256i madd_i8(__m256i x, __m256i y) {
  return _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

// 16 int16 -> 8 int32: adjacent pairs summed, each multiplied by `scale` (int16 per lane).
__m256i widen(__m256i p16, __m256i scale) { return _mm256_madd_epi16(p16, scale); }
// Vector constants are functions, not globals: a global's initializer would run AVX2 code at
// program start on every CPU.
__m256i ones16() { return _mm256_set1_epi16(1); }
__m256i iq4_grid() { return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIQ4NLValues))); }

float dot_f32(int64_t n, const void* w, const void* a) {
  const float* x = static_cast<const float*>(w);
  const float* y = static_cast<const float*>(a);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k)
      acc[k] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8 * k), _mm256_loadu_ps(y + i + 8 * k), acc[k]);
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), acc[0]);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

template <typename Load>
float dot_half(int64_t n, const uint16_t* x, const uint16_t* y, Load load, float (*to_f32)(uint16_t)) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32)
    for (int k = 0; k < 4; ++k) acc[k] = _mm256_fmadd_ps(load(x + i + 8 * k), load(y + i + 8 * k), acc[k]);
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(load(x + i), load(y + i), acc[0]);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += to_f32(x[i]) * to_f32(y[i]);
  return sum;
}

float bf16(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float dot_f16(int64_t n, const void* w, const void* a) {
  auto load = [](const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); };
  return dot_half(n, static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(a), load, f16);
}

float dot_bf16(int64_t n, const void* w, const void* a) {
  auto load = [](const uint16_t* p) {
    const __m256i wide = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  };
  return dot_half(n, static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(a), load, bf16);
}

// Legacy blocks against Q8_0: `levels` gives the block's 32 signed levels as bytes.
template <typename Block, typename Levels>
float dot_signed_q8_0(int64_t n, const void* w, const void* a, Levels levels) {
  const Block* x = static_cast<const Block*>(w);
  const BlockQ8_0* y = static_cast<const BlockQ8_0*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256i isum = widen(madd_i8(levels(x[b]), load32(y[b].qs)), ones16());
    acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[b].d) * f16(y[b].d)), _mm256_cvtepi32_ps(isum), acc);
  }
  return hsum(acc);
}

// Affine blocks against Q8_1: unsigned levels, plus the min times the activation sum s.
template <typename Block, typename Levels>
float dot_unsigned_q8_1(int64_t n, const void* w, const void* a, Levels levels) {
  const Block* x = static_cast<const Block*>(w);
  const BlockQ8_1* y = static_cast<const BlockQ8_1*>(a);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256i isum = widen(_mm256_maddubs_epi16(levels(x[b]), load32(y[b].qs)), ones16());
    acc = _mm256_fmadd_ps(_mm256_set1_ps(f16(x[b].d) * f16(y[b].d)), _mm256_cvtepi32_ps(isum), acc);
    mins += f16(x[b].m) * f16(y[b].s);
  }
  return hsum(acc) + mins;
}

// The two templates above for T activation rows at once (batched decode): each weight block is
// unpacked once and multiplied with every row's block. Row j's sums run in the same order as
// the one-row kernel's, so out[j * out_stride] is that kernel's result bit for bit.
// What a many-rows kernel keeps per activation row: the row's blocks, eight f32 lanes of sums,
// and the scalar sum of the min terms (affine types).
template <int T, typename ActBlock>
struct RowsState {
  const ActBlock* y[T];
  __m256 acc[T];
  float mins[T];
  RowsState(const std::byte* a, size_t act_stride) {
    for (int j = 0; j < T; ++j) {
      y[j] = reinterpret_cast<const ActBlock*>(a + j * act_stride);
      acc[j] = _mm256_setzero_ps();
      mins[j] = 0;
    }
  }
};

template <int T, typename Block, typename Levels>
void dot_signed_q8_0_rows(int64_t n, const Block* x, const std::byte* a, size_t act_stride, float* out,
                          int64_t out_stride, Levels levels) {
  RowsState<T, BlockQ8_0> st(a, act_stride);
  const auto& y = st.y;
  auto& acc = st.acc;
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256i q = levels(x[b]);
    const __m256i q_abs = _mm256_sign_epi8(q, q);  // madd_i8's unsigned operand, shared by the rows
    const float dx = f16(x[b].d);
    for (int j = 0; j < T; ++j) {
      const __m256i p = _mm256_maddubs_epi16(q_abs, _mm256_sign_epi8(load32(y[j][b].qs), q));
      acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16(y[j][b].d)), _mm256_cvtepi32_ps(widen(p, ones16())), acc[j]);
    }
  }
  for (int j = 0; j < T; ++j) out[j * out_stride] = hsum(acc[j]);
}

template <int T, typename Block, typename Levels>
void dot_unsigned_q8_1_rows(int64_t n, const Block* x, const std::byte* a, size_t act_stride, float* out,
                            int64_t out_stride, Levels levels) {
  RowsState<T, BlockQ8_1> st(a, act_stride);
  const auto& y = st.y;
  auto& acc = st.acc;
  auto& mins = st.mins;
  for (int64_t b = 0; b < n / 32; ++b) {
    const __m256i q = levels(x[b]);
    const float dx = f16(x[b].d), mx = f16(x[b].m);
    for (int j = 0; j < T; ++j) {
      const __m256i isum = widen(_mm256_maddubs_epi16(q, load32(y[j][b].qs)), ones16());
      acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(dx * f16(y[j][b].d)), _mm256_cvtepi32_ps(isum), acc[j]);
      mins[j] += mx * f16(y[j][b].s);
    }
  }
  for (int j = 0; j < T; ++j) out[j * out_stride] = hsum(acc[j]) + mins[j];
}

// run(std::integral_constant<int, T>{}, j) for rows j .. j + T - 1 of n_act: groups of four
// (the many-rows kernels keep four rows' accumulators in registers), then the remainder.
template <typename Run>
void in_groups_of_four(int64_t n_act, Run run) {
  int64_t j = 0;
  for (; j + 4 <= n_act; j += 4) run(std::integral_constant<int, 4>{}, j);
  switch (n_act - j) {
    case 3: run(std::integral_constant<int, 3>{}, j); break;
    case 2: run(std::integral_constant<int, 2>{}, j); break;
    case 1: run(std::integral_constant<int, 1>{}, j); break;
    default: break;
  }
}

// The legacy blocks' many-rows kernel.
template <typename Block, bool Signed, __m256i (*levels)(const Block&)>
void dot_rows(int64_t n, const void* w, const void* acts, size_t act_stride, int64_t n_act, float* out,
              int64_t out_stride) {
  const Block* x = static_cast<const Block*>(w);
  const auto* a = static_cast<const std::byte*>(acts);
  const auto run = [&]<int T>(std::integral_constant<int, T>, int64_t j) {
    if constexpr (Signed)
      dot_signed_q8_0_rows<T>(n, x, a + j * act_stride, act_stride, out + j * out_stride, out_stride, levels);
    else
      dot_unsigned_q8_1_rows<T>(n, x, a + j * act_stride, act_stride, out + j * out_stride, out_stride, levels);
  };
  in_groups_of_four(n_act, run);
}

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Each legacy block's 32 levels as bytes (signed for the Q8_0 partners, unsigned for Q8_1's).
__m256i q4_0_levels(const BlockQ4_0& b) { return _mm256_sub_epi8(unpack_nibbles(b.qs), _mm256_set1_epi8(8)); }
__m256i q5_0_levels(const BlockQ5_0& b) {
  const __m256i q = _mm256_or_si256(unpack_nibbles(b.qs), expand_bits(load_u32(b.qh), 0x10));
  return _mm256_sub_epi8(q, _mm256_set1_epi8(16));
}
__m256i q8_0_levels(const BlockQ8_0& b) { return load32(b.qs); }
__m256i iq4_nl_levels(const BlockIQ4_NL& b) { return _mm256_shuffle_epi8(iq4_grid(), unpack_nibbles(b.qs)); }
__m256i q4_1_levels(const BlockQ4_1& b) { return unpack_nibbles(b.qs); }
__m256i q5_1_levels(const BlockQ5_1& b) {
  return _mm256_or_si256(unpack_nibbles(b.qs), expand_bits(load_u32(b.qh), 0x10));
}

float dot_q4_0(int64_t n, const void* w, const void* a) { return dot_signed_q8_0<BlockQ4_0>(n, w, a, q4_0_levels); }
float dot_q5_0(int64_t n, const void* w, const void* a) { return dot_signed_q8_0<BlockQ5_0>(n, w, a, q5_0_levels); }
float dot_q8_0(int64_t n, const void* w, const void* a) { return dot_signed_q8_0<BlockQ8_0>(n, w, a, q8_0_levels); }
float dot_iq4_nl(int64_t n, const void* w, const void* a) {
  return dot_signed_q8_0<BlockIQ4_NL>(n, w, a, iq4_nl_levels);
}
float dot_q4_1(int64_t n, const void* w, const void* a) { return dot_unsigned_q8_1<BlockQ4_1>(n, w, a, q4_1_levels); }
float dot_q5_1(int64_t n, const void* w, const void* a) { return dot_unsigned_q8_1<BlockQ5_1>(n, w, a, q5_1_levels); }

// Bits k of every byte, as 0/1 bytes.
__m256i bit_of_bytes(__m256i v, int k) {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(k)), _mm256_set1_epi8(1));
}
__m256i two_bits_of_bytes(__m256i v, int k) {
  return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(k)), _mm256_set1_epi8(3));
}
// Scales for the 16 int16 products of two 16-weight sub-blocks: lanes 0-7 get s0, 8-15 s1.
__m256i pair_scale(int s0, int s1) {
  return _mm256_set_m128i(_mm_set1_epi16(static_cast<int16_t>(s1)), _mm_set1_epi16(static_cast<int16_t>(s0)));
}

// Q2_K / Q3_K / Q6_K share a shape: 256 weights in 8 runs of 32 (two 16-weight sub-blocks each)
// of unsigned levels; `levels(b, c, g)` gives run 4c + g. Returns the exact integer
// sum_s scale_s * sum_{j in s} level_j * q_j over the super-block in 8 int32 lanes.
template <typename Block, typename Levels>
__m256i sum_16_subblocks(const Block& b, const BlockQ8_K& y, const int* scale, Levels levels) {
  __m256i sumi = _mm256_setzero_si256();
  for (int c = 0; c < 2; ++c)
    for (int g = 0; g < 4; ++g) {
      const int run = 4 * c + g;
      const __m256i p = _mm256_maddubs_epi16(levels(b, c, g), load32(y.qs + 32 * run));
      sumi = _mm256_add_epi32(sumi, widen(p, pair_scale(scale[2 * run], scale[2 * run + 1])));
    }
  return sumi;
}

float dot_q2_k(int64_t n, const void* w, const void* a) {
  const BlockQ2_K* x = static_cast<const BlockQ2_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int scale[16], msum = 0;
    for (int s = 0; s < 16; ++s) {
      scale[s] = x[b].scales[s] & 0xF;
      msum += (x[b].scales[s] >> 4) * y[b].bsums[s];
    }
    const __m256i sumi = sum_16_subblocks(x[b], y[b], scale, [](const BlockQ2_K& q, int c, int g) {
      return two_bits_of_bytes(load32(q.qs + 32 * c), 2 * g);
    });
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * f16(x[b].d)), _mm256_cvtepi32_ps(sumi), acc);
    mins += y[b].d * f16(x[b].dmin) * static_cast<float>(msum);
  }
  return hsum(acc) - mins;
}

float dot_q3_k(int64_t n, const void* w, const void* a) {
  const BlockQ3_K* x = static_cast<const BlockQ3_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    // Levels are stored as (q + 4), 0..7: the offset comes back through the group sums.
    int scale[16], offset = 0;
    for (int s = 0; s < 16; ++s) {
      scale[s] = q3_k_scale(x[b].scales, s);
      offset += scale[s] * y[b].bsums[s];
    }
    const __m256i sumi = sum_16_subblocks(x[b], y[b], scale, [](const BlockQ3_K& q, int c, int g) {
      const __m256i low = two_bits_of_bytes(load32(q.qs + 32 * c), 2 * g);
      return _mm256_or_si256(low, _mm256_slli_epi16(bit_of_bytes(load32(q.hmask), 4 * c + g), 2));
    });
    // The offset cancels much of the sum: subtract it exactly, in integers.
    sum += y[b].d * f16(x[b].d) * static_cast<float>(hsum_i32(sumi) - 4 * offset);
  }
  return sum;
}

float dot_q6_k(int64_t n, const void* w, const void* a) {
  const BlockQ6_K* x = static_cast<const BlockQ6_K*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    // Levels are stored as (q + 32), 0..63.
    int scale[16], offset = 0;
    for (int s = 0; s < 16; ++s) {
      scale[s] = x[b].scales[s];
      offset += scale[s] * y[b].bsums[s];
    }
    const __m256i sumi = sum_16_subblocks(x[b], y[b], scale, [](const BlockQ6_K& q, int c, int g) {
      const __m256i ql = load32(q.ql + 64 * c + 32 * (g & 1));
      const __m256i low = g < 2 ? _mm256_and_si256(ql, _mm256_set1_epi8(0x0F))
                                : _mm256_and_si256(_mm256_srli_epi16(ql, 4), _mm256_set1_epi8(0x0F));
      return _mm256_or_si256(low, _mm256_slli_epi16(two_bits_of_bytes(load32(q.qh + 32 * c), 2 * g), 4));
    });
    // The offset cancels much of the sum: subtract it exactly, in integers.
    sum += y[b].d * f16(x[b].d) * static_cast<float>(hsum_i32(sumi) - 32 * offset);
  }
  return sum;
}

// Q4_K / Q5_K against T activation rows: 4 chunks of 64 weights, low nibbles the first
// 32-weight sub-block of a chunk, high nibbles the second; Q5_K adds bit (2c or 2c + 1) of qh as
// bit 4. The scales and each chunk's levels are unpacked once for all rows.
template <int T, typename Block, bool kHighBit>
void dot_k4_family_rows(int64_t n, const Block* x, const std::byte* a, size_t act_stride, float* out,
                        int64_t out_stride) {
  RowsState<T, BlockQ8_K> st(a, act_stride);
  const auto& y = st.y;
  auto& acc = st.acc;
  auto& mins = st.mins;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    int sc[8], m[8];
    for (int s = 0; s < 8; ++s) k4_scale_min(x[b].scales, s, &sc[s], &m[s]);
    __m256i sumi[T];
    for (int j = 0; j < T; ++j) sumi[j] = _mm256_setzero_si256();
    for (int c = 0; c < 4; ++c) {
      const __m256i q = load32(x[b].qs + 32 * c);
      __m256i lo = _mm256_and_si256(q, low4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
      if constexpr (kHighBit) {
        const __m256i qh = load32(x[b].qh);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(bit_of_bytes(qh, 2 * c), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(bit_of_bytes(qh, 2 * c + 1), 4));
      }
      const __m256i s_lo = _mm256_set1_epi16(static_cast<int16_t>(sc[2 * c]));
      const __m256i s_hi = _mm256_set1_epi16(static_cast<int16_t>(sc[2 * c + 1]));
      for (int j = 0; j < T; ++j) {
        const __m256i p_lo = _mm256_maddubs_epi16(lo, load32(y[j][b].qs + 64 * c));
        const __m256i p_hi = _mm256_maddubs_epi16(hi, load32(y[j][b].qs + 64 * c + 32));
        sumi[j] = _mm256_add_epi32(sumi[j], widen(p_lo, s_lo));
        sumi[j] = _mm256_add_epi32(sumi[j], widen(p_hi, s_hi));
      }
    }
    const float dx = f16(x[b].d), dmin = f16(x[b].dmin);
    for (int j = 0; j < T; ++j) {
      int msum = 0;
      for (int s = 0; s < 8; ++s) msum += m[s] * (y[j][b].bsums[2 * s] + y[j][b].bsums[2 * s + 1]);
      acc[j] = _mm256_fmadd_ps(_mm256_set1_ps(y[j][b].d * dx), _mm256_cvtepi32_ps(sumi[j]), acc[j]);
      mins[j] += y[j][b].d * dmin * static_cast<float>(msum);
    }
  }
  for (int j = 0; j < T; ++j) out[j * out_stride] = hsum(acc[j]) - mins[j];
}

template <typename Block, bool kHighBit>
float dot_k4_family(int64_t n, const void* w, const void* a) {
  float out;
  dot_k4_family_rows<1, Block, kHighBit>(n, static_cast<const Block*>(w), static_cast<const std::byte*>(a), 0, &out, 1);
  return out;
}

template <typename Block, bool kHighBit>
void dot_k4_rows(int64_t n, const void* w, const void* acts, size_t act_stride, int64_t n_act, float* out,
                 int64_t out_stride) {
  const Block* x = static_cast<const Block*>(w);
  const auto* a = static_cast<const std::byte*>(acts);
  const auto run = [&]<int T>(std::integral_constant<int, T>, int64_t j) {
    dot_k4_family_rows<T, Block, kHighBit>(n, x, a + j * act_stride, act_stride, out + j * out_stride, out_stride);
  };
  in_groups_of_four(n_act, run);
}

float dot_q4_k(int64_t n, const void* w, const void* a) { return dot_k4_family<BlockQ4_K, false>(n, w, a); }
float dot_q5_k(int64_t n, const void* w, const void* a) { return dot_k4_family<BlockQ5_K, true>(n, w, a); }

float dot_iq4_xs(int64_t n, const void* w, const void* a) {
  const BlockIQ4_XS* x = static_cast<const BlockIQ4_XS*>(w);
  const BlockQ8_K* y = static_cast<const BlockQ8_K*>(a);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / kQK_K; ++b) {
    __m256i sumi = _mm256_setzero_si256();
    for (int s = 0; s < 8; ++s) {
      const __m256i levels = _mm256_shuffle_epi8(iq4_grid(), unpack_nibbles(x[b].qs + 16 * s));
      const __m256i p = madd_i8(levels, load32(y[b].qs + 32 * s));
      sumi = _mm256_add_epi32(sumi, widen(p, _mm256_set1_epi16(static_cast<int16_t>(iq4_xs_scale(x[b], s)))));
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(y[b].d * f16(x[b].d)), _mm256_cvtepi32_ps(sumi), acc);
  }
  return hsum(acc);
}

// quantize_block_q8 (dot_scalar.cpp) on eight lanes: the same amax (NaN never wins: maxps
// keeps its second operand), the same scale, cvtps's round-half-even, the int32 sum wrapping as
// there, and the saturation to int8 through int16 (the same as straight to int8).
float quantize_block_q8_avx2(const float* x, int8_t* qs, int32_t* sum) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  __m256 amax8 = _mm256_setzero_ps();
  for (int k = 0; k < 4; ++k) {
    v[k] = _mm256_loadu_ps(x + 8 * k);
    amax8 = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), amax8);
  }
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  const float amax = _mm_cvtss_f32(m);
  const float d = amax / 127.f;
  const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
  __m256i q[4];
  for (int k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(v[k], id));
  *sum = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  // packs interleaves 128-bit lanes; the permute puts the 32 levels back in order.
  const __m256i q16 = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  const __m256i ordered = _mm256_permutevar8x32_epi32(q16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(qs), ordered);
  return d;
}

// F16C's conversion rounds as f32_to_f16 does (nearest even; a NaN keeps its top payload bits
// and becomes quiet).
uint16_t to_f16(float f) { return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT)); }

}  // namespace

VecDotFn avx2_kernel(GgmlType weight_type) {
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

void quantize_act_q8_0_avx2(const float* x, BlockQ8_0* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t sum;
    y[b].d = to_f16(quantize_block_q8_avx2(x + 32 * b, y[b].qs, &sum));
  }
}

void quantize_act_q8_1_avx2(const float* x, BlockQ8_1* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t sum;
    const float d = quantize_block_q8_avx2(x + 32 * b, y[b].qs, &sum);
    y[b].d = to_f16(d);
    y[b].s = to_f16(d * static_cast<float>(sum));
  }
}

VecDotRowsFn avx2_rows_kernel(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::Q4_0: return dot_rows<BlockQ4_0, true, q4_0_levels>;
    case GgmlType::Q4_1: return dot_rows<BlockQ4_1, false, q4_1_levels>;
    case GgmlType::Q5_0: return dot_rows<BlockQ5_0, true, q5_0_levels>;
    case GgmlType::Q5_1: return dot_rows<BlockQ5_1, false, q5_1_levels>;
    case GgmlType::Q8_0: return dot_rows<BlockQ8_0, true, q8_0_levels>;
    case GgmlType::IQ4_NL: return dot_rows<BlockIQ4_NL, true, iq4_nl_levels>;
    case GgmlType::Q4_K: return dot_k4_rows<BlockQ4_K, false>;
    case GgmlType::Q5_K: return dot_k4_rows<BlockQ5_K, true>;
    default: return nullptr;
  }
}

}  // namespace optiq::dot_detail
