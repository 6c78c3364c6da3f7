#include "engine/weight.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "engine/threads.h"
#include "quant/dot.h"
#include "quant/float16.h"
#include "quant/quantize.h"
#include "util/error.h"

namespace optiq::engine {
namespace {

// From this many tokens on, matmul dequantizes tiles of rows and calls sgemm (prefill);
// below it every output is a vec_dot on quantized activations (decode, and a server's batched
// decode). The crossover is where sgemm's gain pays for dequantizing the whole weight once per
// call, measured with optiq_kernels_bench on 4096 x 4096 (docs/benchmarks.md): float types from
// a few tokens on; the block types from 64 (the many-rows kernels of the legacy blocks, which
// unpack a weight block once for four tokens, run 32 tokens at ~40 GFLOP/s on one core, sgemm
// of dequantized tiles 64 tokens at 30-43; the K-quants' scalar dequantization makes sgemm
// slower still).
int64_t sgemm_min_tokens(GgmlType type) {
  switch (type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: return 4;
    default: return 64;
  }
}
// Rows of W dequantized per sgemm call: enough that packing x (which sgemm repeats per call)
// is paid over many rows, few enough that a tile stays in the L2 cache for n_in ~ 4096.
constexpr int64_t kTileRows = 128;
// Multiply-adds below which a matmul runs on one thread (a parallel region costs microseconds).
constexpr int64_t kParallelMinWork = int64_t{1} << 16;

int threads_for(int64_t work) { return work >= kParallelMinWork ? num_threads() : 1; }

}  // namespace

void dequantize_weight_row(const Weight& w, int64_t r, float* out) {
  const std::byte* p = w.row(r);
  const auto n = static_cast<size_t>(w.n_in);
  switch (w.type) {
    case GgmlType::F32: std::memcpy(out, p, n * sizeof(float)); break;
    case GgmlType::F16: f16_to_f32_n(reinterpret_cast<const uint16_t*>(p), out, n); break;
    case GgmlType::BF16: bf16_to_f32_n(reinterpret_cast<const uint16_t*>(p), out, n); break;
    default: dequantize_row(w.type, p, out, w.n_in);
  }
}

namespace {

void add_bias(const Weight& w, int64_t n_tokens, float* y) {
  if (w.bias.empty()) return;
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t o = 0; o < w.n_out; ++o) y[t * w.n_out + o] += w.bias[static_cast<size_t>(o)];
}

void matmul_vec_dot(const Weight& w, const float* x, int64_t n_tokens, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const GgmlType act_type = *vec_dot_type(w.type);
  const VecDotFn dot = vec_dot_kernel(w.type);
  const size_t act_bytes = *ggml_row_bytes(act_type, static_cast<uint64_t>(n_in));
  std::vector<std::byte> act;  // [n_tokens][act_bytes]: x in the activation type
  const std::byte* acts = reinterpret_cast<const std::byte*>(x);
  if (act_type != GgmlType::F32) {
    act.resize(static_cast<size_t>(n_tokens) * act_bytes);
    for (int64_t t = 0; t < n_tokens; ++t) quantize_activation(act_type, x + t * n_in, act.data() + t * act_bytes, n_in);
    acts = act.data();
  }
  const VecDotRowsFn dot_rows = n_tokens > 1 ? vec_dot_rows_kernel(w.type) : nullptr;
  const size_t row_bytes = w.row_bytes();
#pragma omp parallel for num_threads(threads_for(n_in * n_out * n_tokens)) schedule(static)
  for (int64_t o = 0; o < n_out; ++o) {
    const std::byte* row = w.data.data() + static_cast<size_t>(o) * row_bytes;
    if (dot_rows)
      dot_rows(n_in, row, acts, act_bytes, n_tokens, y + o, n_out);
    else
      for (int64_t t = 0; t < n_tokens; ++t) y[t * n_out + o] = dot(n_in, row, acts + t * act_bytes);
  }
}

// x rounded to the activation type's values, [n_tokens, n_in]: what ggml's CPU backend
// multiplies in prefill too, so a batch and token-by-token decode see the same activations.
std::vector<float> rounded_activations(GgmlType act_type, const float* x, int64_t n_tokens, int64_t n_in) {
  std::vector<float> out(static_cast<size_t>(n_tokens * n_in));
  std::vector<std::byte> row(*ggml_row_bytes(act_type, static_cast<uint64_t>(n_in)));
  for (int64_t t = 0; t < n_tokens; ++t) {
    quantize_activation(act_type, x + t * n_in, row.data(), n_in);
    dequantize_activation(act_type, row.data(), out.data() + t * n_in, n_in);
  }
  return out;
}

void matmul_sgemm(const Weight& w, const float* x_in, int64_t n_tokens, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const int64_t n_tiles = (n_out + kTileRows - 1) / kTileRows;
  const GgmlType act_type = *vec_dot_type(w.type);
  std::vector<float> rounded;
  if (act_type != GgmlType::F32) rounded = rounded_activations(act_type, x_in, n_tokens, n_in);
  const float* x = rounded.empty() ? x_in : rounded.data();
#pragma omp parallel num_threads(threads_for(n_in * n_out * n_tokens))
  {
    std::vector<float> tile;  // [kTileRows, n_in]: the tile's rows in f32 (non-F32 weights)
    if (w.type != GgmlType::F32) tile.resize(static_cast<size_t>(kTileRows * n_in));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n_tiles; ++i) {
      const int64_t o0 = i * kTileRows, rows = std::min(kTileRows, n_out - o0);
      const float* wt = reinterpret_cast<const float*>(w.row(o0));
      if (w.type != GgmlType::F32) {
        for (int64_t r = 0; r < rows; ++r) dequantize_weight_row(w, o0 + r, tile.data() + r * n_in);
        wt = tile.data();
      }
      // y[:, o0:o0+rows] = x · wtᵀ
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(rows),
                  static_cast<int>(n_in), 1.0f, x, static_cast<int>(n_in), wt, static_cast<int>(n_in), 0.0f, y + o0,
                  static_cast<int>(n_out));
    }
  }
}

std::string shape_str(const std::vector<uint64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s;
}

// make_weight's checks, taking the bytes over.
Weight build_weight(std::string name, GgmlType type, int64_t n_in, int64_t n_out, std::vector<std::byte>&& data) {
  if (!vec_dot_supported(type))
    throw std::invalid_argument("weight " + name + ": the engine cannot multiply " +
                                std::string(ggml_type_name(type)) + " weights");
  const auto row_bytes = ggml_row_bytes(type, static_cast<uint64_t>(n_in));
  if (n_in <= 0 || n_out < 0 || !row_bytes)
    throw std::invalid_argument("weight " + name + ": rows of " + std::to_string(n_in) + " are not whole " +
                                std::string(ggml_type_name(type)) + " blocks");
  if (data.size() != *row_bytes * static_cast<uint64_t>(n_out))
    throw std::invalid_argument("weight " + name + ": " + std::to_string(data.size()) + " bytes for " +
                                std::to_string(n_out) + " rows of " + std::to_string(*row_bytes));
  Weight w;
  w.name = std::move(name);
  w.type = type;
  w.n_in = n_in;
  w.n_out = n_out;
  w.data = std::move(data);
  return w;
}

}  // namespace

Weight make_weight(std::string name, GgmlType type, int64_t n_in, int64_t n_out, std::span<const std::byte> raw) {
  return build_weight(std::move(name), type, n_in, n_out, std::vector<std::byte>(raw.begin(), raw.end()));
}

Weight make_weight_f32(std::string name, int64_t n_in, int64_t n_out, std::span<const float> values) {
  return make_weight(std::move(name), GgmlType::F32, n_in, n_out, std::as_bytes(values));
}

void matmul(const Weight& w, const float* x, int64_t n_tokens, float* y) {
  if (n_tokens <= 0 || w.n_out == 0) return;
  if (n_tokens >= sgemm_min_tokens(w.type))
    matmul_sgemm(w, x, n_tokens, y);
  else
    matmul_vec_dot(w, x, n_tokens, y);
  add_bias(w, n_tokens, y);
}

void get_rows(const Weight& w, std::span<const int32_t> ids, float* out) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= w.n_out)
      throw InputError(w.name, std::nullopt,
                       "row " + std::to_string(ids[i]) + " is outside 0.." + std::to_string(w.n_out - 1));
    dequantize_weight_row(w, ids[i], out + i * w.n_in);
  }
}

Weight load_weight(const ModelSource& src, const std::string& name, int64_t n_in, int64_t n_out,
                   bool required) {
  const SourceTensor* t = src.find(name);
  if (!t) {
    if (required) throw InputError(src.path, std::nullopt, "tensor " + name + " is missing");
    Weight w;
    w.name = name;
    return w;
  }
  if (t->shape.size() != 2 || t->shape[0] != static_cast<uint64_t>(n_in) ||
      t->shape[1] != static_cast<uint64_t>(n_out))
    throw InputError(t->origin, std::nullopt,
                     "tensor " + name + " has shape " + shape_str(t->shape) + ", expected " +
                         std::to_string(n_in) + " x " + std::to_string(n_out));
  if (!vec_dot_supported(t->type))
    throw InputError(t->origin, std::nullopt,
                     "tensor " + name + " has type " + std::string(ggml_type_name(t->type)) +
                         ", which the engine cannot multiply yet");
  if (t->transform.add != 0.0f) {  // only float reads apply it
    std::vector<float> values(static_cast<size_t>(n_in * n_out));
    read_rows_f32(*t, 0, t->n_rows(), values.data());
    return make_weight_f32(name, n_in, n_out, values);
  }
  std::vector<std::byte> raw(t->data.size());
  read_rows_raw(*t, 0, t->n_rows(), raw.data());
  return build_weight(name, t->type, n_in, n_out, std::move(raw));
}

std::vector<float> load_vector(const ModelSource& src, const std::string& name, int64_t n,
                               bool required) {
  const SourceTensor* t = src.find(name);
  if (!t) {
    if (required) throw InputError(src.path, std::nullopt, "tensor " + name + " is missing");
    return {};
  }
  if (t->n_elements() != static_cast<uint64_t>(n))
    throw InputError(t->origin, std::nullopt,
                     "tensor " + name + " has shape " + shape_str(t->shape) + ", expected " +
                         std::to_string(n) + " elements");
  std::vector<float> v(static_cast<size_t>(n));
  read_rows_f32(*t, 0, t->n_rows(), v.data());
  return v;
}

}  // namespace optiq::engine
