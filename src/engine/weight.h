// A weight matrix as the engine multiplies with it, and the one matmul every projection goes
// through. Weights stay in their stored type (F32, F16, BF16 or a ggml block type): decode
// multiplies them with ggml's dot kernels (src/quant/dot.h), prefill dequantizes tiles of rows
// and calls OpenBLAS's sgemm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "io/ggml_type.h"
#include "model/model_source.h"

namespace optiq::engine {

struct Weight {
  std::string name;             // GGUF tensor name, for messages
  GgmlType type = GgmlType::F32;  // storage type of `data`
  int64_t n_in = 0;             // row length: input features (ggml shape[0])
  int64_t n_out = 0;            // rows: output features (ggml shape[1])
  std::vector<std::byte> data;  // [n_out][row_bytes()]: rows in `type`, in the engine's row order
  std::vector<float> bias;      // [n_out], or empty when the layer has no bias

  size_t row_bytes() const {
    const auto& t = ggml_traits(type);
    return static_cast<size_t>(n_in) / t.block_elems * t.block_bytes;
  }
  const std::byte* row(int64_t o) const { return data.data() + static_cast<size_t>(o) * row_bytes(); }
};

// A Weight of n_out rows of n_in values stored as `type` (raw: n_out × ggml_row_bytes(type,
// n_in) bytes, copied). Throws std::invalid_argument when the type has no dot kernel
// (vec_dot_supported), n_in is not a whole number of blocks, or the size is wrong.
Weight make_weight(std::string name, GgmlType type, int64_t n_in, int64_t n_out, std::span<const std::byte> raw);
// The same from f32 values [n_out, n_in] (kept as F32).
Weight make_weight_f32(std::string name, int64_t n_in, int64_t n_out, std::span<const float> values);

// y[t, o] = sum_i W[o, i] * x[t, i] (+ bias[o]), W being w's rows in f32.
// x: [n_tokens, w.n_in], y: [n_tokens, w.n_out]; y must not alias x.
// As in ggml's CPU backend, x is first rounded to the weight type's activation type (Q8_0,
// Q8_1 or Q8_K for block types, f16 for F16, bf16 for BF16, none for F32). Few tokens (decode):
// every output is one vec_dot of a stored row with a token's quantized x (the many-rows kernels
// of the legacy blocks and Q4_K/Q5_K take a row with up to four tokens at once, with the same
// result). Many tokens
// (prefill): tiles of rows dequantized to f32 are multiplied with the rounded x by cblas_sgemm;
// the products are the same, only the f32 summation order (and, for Q4_1/Q5_1, the f16
// rounding of the activation sums the dot kernels use) differs. Rows are split over
// num_threads() threads.
void matmul(const Weight& w, const float* x, int64_t n_tokens, float* y);

// Row r of w as w.n_in floats into out [w.n_in].
void dequantize_weight_row(const Weight& w, int64_t r, float* out);

// Rows `ids` of w dequantized to f32: out is [ids.size(), w.n_in] (embedding lookup).
// Throws InputError for an id outside 0..n_out-1.
void get_rows(const Weight& w, std::span<const int32_t> ids, float* out);

// Reads a 2-D tensor as a Weight in its stored type. Throws InputError when the tensor is
// missing (and `required`), is not 2-D, has the wrong shape, or has a type with no dot kernel.
// Returns a Weight with n_out == 0 when an optional tensor is missing.
Weight load_weight(const ModelSource& src, const std::string& name, int64_t n_in, int64_t n_out,
                   bool required = true);

// Reads a tensor of exactly n elements as f32 (norm weights, biases, rope factors).
// Returns an empty vector when the tensor is missing and not `required`.
std::vector<float> load_vector(const ModelSource& src, const std::string& name, int64_t n,
                               bool required = true);

}  // namespace optiq::engine
