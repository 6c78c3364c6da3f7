#include "engine/weight.h"

#include "util/error.h"

namespace optiq::engine {

void matmul(const Weight& w, const float* x, int64_t n_tokens, float* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const bool has_bias = !w.bias.empty();
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * n_in;

    float* yt = y + t * n_out;
    for (int64_t o = 0; o < n_out; ++o) {
      const float* row = w.data.data() + o * n_in;
      // Eight independent partial sums: vectorizes, and rounds less than one long chain.
      float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      int64_t i = 0;
      for (; i + 8 <= n_in; i += 8)
        for (int k = 0; k < 8; ++k) acc[k] += row[i + k] * xt[i + k];
      float sum = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      for (; i < n_in; ++i) sum += row[i] * xt[i];
      yt[o] = has_bias ? sum + w.bias[o] : sum;
    }
  }
}

namespace {

std::string shape_str(const std::vector<uint64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s;
}

}  // namespace

Weight load_weight(const ModelSource& src, const std::string& name, int64_t n_in, int64_t n_out,
                   bool required) {
  Weight w;
  w.name = name;
  const SourceTensor* t = src.find(name);
  if (!t) {
    if (required) throw InputError(src.path, std::nullopt, "tensor " + name + " is missing");
    return w;
  }
  if (t->shape.size() != 2 || t->shape[0] != static_cast<uint64_t>(n_in) ||
      t->shape[1] != static_cast<uint64_t>(n_out))
    throw InputError(t->origin, std::nullopt,
                     "tensor " + name + " has shape " + shape_str(t->shape) + ", expected " +
                         std::to_string(n_in) + " x " + std::to_string(n_out));
  w.source_type = t->type;
  w.n_in = n_in;
  w.n_out = n_out;
  w.data.resize(static_cast<size_t>(n_in * n_out));
  read_rows_f32(*t, 0, t->n_rows(), w.data.data());
  return w;
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
