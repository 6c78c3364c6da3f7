// Dot products between a stored weight row and an activation row, the way ggml's CPU backend
// computes them: the activation row is first converted to the weight type's partner ("vec_dot
// type": Q8_0, Q8_1 or Q8_K for block types, the weight's own type for F32/F16/BF16), then
// the two rows are multiplied block by block with exact integer sums inside each block.
// Every kernel has a scalar reference; AVX2+FMA+F16C versions are picked at run time (cpuid),
// so the portable build uses them on CPUs that have them. There is no AVX-512 code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "io/ggml_type.h"

namespace optiq {

// The activation type ggml's CPU backend pairs with `weight_type`; nullopt when optiq has no
// dot kernel for it (the IQ1/IQ2/IQ3 families, ternary and FP4 types, integer types).
std::optional<GgmlType> vec_dot_type(GgmlType weight_type);
inline bool vec_dot_supported(GgmlType weight_type) { return vec_dot_type(weight_type).has_value(); }

// Converts n floats into an activation row of `act_type` (F32, F16, BF16, Q8_0, Q8_1 or Q8_K;
// ggml_row_bytes(act_type, n) bytes at dst), byte for byte what ggml's CPU from_float writes on
// an AVX2 machine. n must be a multiple of the type's block. Throws std::invalid_argument for
// another type or a bad n.
void quantize_activation(GgmlType act_type, const float* x, void* dst, int64_t n);

// The values an activation row stands for: n floats from ggml_row_bytes(act_type, n) bytes
// (Q8_1's s is not used: a = d * q). Same types and checks as quantize_activation.
void dequantize_activation(GgmlType act_type, const void* src, float* x, int64_t n);

// sum_i w[i] * a[i] over one row of n weights: w_row holds ggml_row_bytes(weight_type, n)
// bytes, act_row ggml_row_bytes(*vec_dot_type(weight_type), n) bytes. No checks: the caller
// validated the type and n (a multiple of the block size).
using VecDotFn = float (*)(int64_t n, const void* w_row, const void* act_row);

// One stored row against n_act activation rows that lie act_stride bytes apart:
// out[j * out_stride] = the VecDotFn's dot with row j, bit for bit, but each weight block is
// unpacked once for several activation rows (batched decode, where the row sits in L1 anyway).
using VecDotRowsFn = void (*)(int64_t n, const void* w_row, const void* act_rows, size_t act_stride, int64_t n_act,
                              float* out, int64_t out_stride);

enum class DotIsa { Scalar, Avx2 };

// True when this CPU can run `isa` (Scalar always; Avx2 needs AVX2, FMA, F16C and OS support
// for the AVX registers).
bool dot_isa_available(DotIsa isa);
// The best available instruction set: what vec_dot and vec_dot_kernel use.
DotIsa dot_isa_best();
const char* dot_isa_name(DotIsa isa);

// The kernel for `weight_type` on `isa` (best: dot_isa_best()); null when the type has no dot
// kernel or the isa is not available.
VecDotFn vec_dot_kernel(GgmlType weight_type, DotIsa isa);
inline VecDotFn vec_dot_kernel(GgmlType weight_type) { return vec_dot_kernel(weight_type, dot_isa_best()); }
// The many-rows kernel on `isa` for the legacy block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0,
// IQ4_NL) and Q4_K / Q5_K on AVX2; null otherwise, where callers loop over vec_dot_kernel's.
VecDotRowsFn vec_dot_rows_kernel(GgmlType weight_type, DotIsa isa);
inline VecDotRowsFn vec_dot_rows_kernel(GgmlType weight_type) {
  return vec_dot_rows_kernel(weight_type, dot_isa_best());
}

// One dot product with the best kernel; throws std::invalid_argument for an unsupported type.
float vec_dot(GgmlType weight_type, int64_t n, const void* w_row, const void* act_row);

}  // namespace optiq
