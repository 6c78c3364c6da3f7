// A weight matrix as the engine multiplies with it, and the one matmul every projection goes
// through. Today every weight is dequantized to f32 at load; the seam is here so that quantized
// storage types can be multiplied directly later without touching the forward pass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/ggml_type.h"
#include "model/model_source.h"

namespace optiq::engine {

struct Weight {
  std::string name;                    // GGUF tensor name, for messages
  GgmlType source_type = GgmlType::F32;  // type the weight had in the file (before dequantizing)
  int64_t n_in = 0;                    // row length: input features (ggml shape[0])
  int64_t n_out = 0;                   // rows: output features (ggml shape[1])
  std::vector<float> data;             // [n_out, n_in] row-major, f32
  std::vector<float> bias;             // [n_out], or empty when the layer has no bias
};

// y[t, o] = sum_i w.data[o, i] * x[t, i] (+ w.bias[o]), accumulated in f32.
// x: [n_tokens, w.n_in], y: [n_tokens, w.n_out]; y must not alias x.
void matmul(const Weight& w, const float* x, int64_t n_tokens, float* y);

// Reads a 2-D tensor as a Weight, dequantized to f32. Throws InputError when the tensor is
// missing (and `required`), is not 2-D, has the wrong shape, or has an unsupported type.
// Returns a Weight with n_out == 0 when an optional tensor is missing.
Weight load_weight(const ModelSource& src, const std::string& name, int64_t n_in, int64_t n_out,
                   bool required = true);

// Reads a tensor of exactly n elements as f32 (norm weights, biases, rope factors).
// Returns an empty vector when the tensor is missing and not `required`.
std::vector<float> load_vector(const ModelSource& src, const std::string& name, int64_t n,
                               bool required = true);

}  // namespace optiq::engine
