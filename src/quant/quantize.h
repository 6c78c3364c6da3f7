// Quantize and dequantize rows of ggml block types. Quantization reproduces llama.cpp's
// `ggml_quantize_chunk` for one row (the quantizers llama-quantize runs), so optiq writes the
// same bytes llama.cpp would for the same weights and importance matrix.
#pragma once

#include <cstdint>

#include "io/ggml_type.h"

namespace optiq {

// True for the block types quantize_row / dequantize_row handle.
bool quantize_supported(GgmlType type);

// `src`: one row of n weights (n a multiple of the type's block size; the importance-weighted
// quantizers use statistics of the whole row, so pass a tensor row, not an arbitrary chunk).
// `dst`: ggml_row_bytes(type, n) bytes. `importance`: null, or n non-negative per-column weights
// (an imatrix entry: mean squared activation of each input column); types that ignore it
// (Q8_0) accept it. Throws std::invalid_argument for an unsupported type or a bad n.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n, const float* importance);

// One row as ggml's CPU backend converts floats into a tensor of `type` (the type's from_float,
// which ggml_set_rows and ggml_cpy run: how llama.cpp fills a quantized KV cache). It equals
// quantize_row without importance except for Q8_0, rounded half to even as by the AVX2
// from_float (quantize_activation's Q8_0), and IQ4_NL, which keeps the first scale of the search
// (ggml's quantize_row_iq4_nl_ref). Types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL; same checks.
void quantize_row_from_float(GgmlType type, const float* src, void* dst, int64_t n);

// `src`: ggml_row_bytes(type, n) bytes of blocks; `dst`: n floats. Same preconditions.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

}  // namespace optiq
