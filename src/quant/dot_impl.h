// Internal to src/quant: the per-instruction-set kernel tables dot.cpp dispatches to, and the
// activation quantizers. Not part of the public API.
#pragma once

#include <cstdint>

#include "io/ggml_type.h"
#include "quant/blocks.h"
#include "quant/dot.h"
#include "quant/scale_unpack.h"

namespace optiq::dot_detail {

// The scalar reference kernel for a weight type (dot_scalar.cpp); null when there is none.
VecDotFn scalar_kernel(GgmlType weight_type);
// The AVX2+FMA+F16C kernel (dot_avx2.cpp, compiled with those instructions enabled); null when
// there is none. Call only after checking the CPU has them: even this lookup may use them.
VecDotFn avx2_kernel(GgmlType weight_type);
// Its many-rows form (dot.h's VecDotRowsFn); null for the types that have none.
VecDotRowsFn avx2_rows_kernel(GgmlType weight_type);

// Activation quantizers, n a multiple of the block (dot_scalar.cpp). The rounding is ggml's
// CPU from_float on AVX2: Q8_0/Q8_1 round x * 127 / amax half to even; Q8_K is ggml's
// reference (nearest_int of x * -127 / max, max the signed value of largest magnitude).
void quantize_act_q8_0(const float* x, BlockQ8_0* y, int64_t n);
void quantize_act_q8_1(const float* x, BlockQ8_1* y, int64_t n);
void quantize_act_q8_k(const float* x, BlockQ8_K* y, int64_t n);
// The Q8_0 and Q8_1 quantizers on AVX2 (dot_avx2.cpp): the same bytes as the ones above.
void quantize_act_q8_0_avx2(const float* x, BlockQ8_0* y, int64_t n);
void quantize_act_q8_1_avx2(const float* x, BlockQ8_1* y, int64_t n);

}  // namespace optiq::dot_detail
