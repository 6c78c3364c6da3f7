// IEEE half (F16) and bfloat16 (BF16) conversions with the rounding llama.cpp and numpy use:
// round to nearest, ties to even; NaN stays NaN. Bulk conversions pick an F16C path at run
// time when the CPU has it, so the default (portable) build is still fast.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace optiq {

inline float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

inline uint16_t f32_to_bf16(float f) {
  uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// n elements each; src and dst may not overlap.
void f16_to_f32_n(const uint16_t* src, float* dst, size_t n);
void f32_to_f16_n(const float* src, uint16_t* dst, size_t n);
void bf16_to_f32_n(const uint16_t* src, float* dst, size_t n);
void f32_to_bf16_n(const float* src, uint16_t* dst, size_t n);

}  // namespace optiq
