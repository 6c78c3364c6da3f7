#include "sensitivity/tensor_kl.h"

#include <cmath>
#include <cstring>
#include <numeric>
#include <stdexcept>

#include "engine/ops.h"
#include "quant/float16.h"
#include "quant/quantize.h"

namespace optiq::sensitivity {

engine::Weight quantized_copy(const engine::Weight& w, GgmlType type, const float* importance,
                              const SourceTensor* source) {
  const bool is_float = type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16;
  const auto row_bytes = ggml_row_bytes(type, static_cast<uint64_t>(w.n_in));
  if (!row_bytes || !(quantize_supported(type) || is_float))
    throw std::invalid_argument(w.name + ": rows of " + std::to_string(w.n_in) + " cannot be stored as " +
                                std::string(ggml_type_name(type)));
  std::vector<std::byte> bytes(*row_bytes * static_cast<size_t>(w.n_out));
#pragma omp parallel
  {
    std::vector<float> row(static_cast<size_t>(w.n_in));
#pragma omp for schedule(static)
    for (int64_t r = 0; r < w.n_out; ++r) {
      const int32_t id = static_cast<int32_t>(r);
      if (source) read_rows_f32(*source, static_cast<uint64_t>(r), 1, row.data());
      else engine::get_rows(w, std::span(&id, 1), row.data());
      std::byte* dst = bytes.data() + static_cast<size_t>(r) * *row_bytes;
      auto* half = reinterpret_cast<uint16_t*>(dst);
      if (type == GgmlType::F32) std::memcpy(dst, row.data(), row.size() * sizeof(float));
      else if (type == GgmlType::F16) f32_to_f16_n(row.data(), half, row.size());
      else if (type == GgmlType::BF16) f32_to_bf16_n(row.data(), half, row.size());
      else quantize_row(type, row.data(), dst, w.n_in, importance);
    }
  }
  engine::Weight q = engine::make_weight(w.name, type, w.n_in, w.n_out, bytes);
  q.bias = w.bias;
  return q;
}

engine::Weight candidate_weight(const engine::Weight& w, const SourceTensor& tensor, GgmlType type,
                                const float* importance, bool from_source) {
  if (tensor.type != type || !tensor.transform.identity())
    return quantized_copy(w, type, importance, from_source ? &tensor : nullptr);
  engine::Weight kept = engine::make_weight(w.name, type, w.n_in, w.n_out, tensor.data);
  kept.bias = w.bias;
  return kept;
}

double kl_divergence(const float* lp, const float* lq, int64_t n) {
  double kl = 0;
  for (int64_t v = 0; v < n; ++v) {
    const double p = std::exp(static_cast<double>(lp[v]));
    if (p > 0) kl += p * (static_cast<double>(lp[v]) - lq[v]);
  }
  return kl;
}

double mean_kl(const engine::Model& reference, const engine::Model& test,
               const std::vector<std::vector<int32_t>>& sequences) {
  const int64_t V = reference.hp.n_vocab;
  double total = 0;
  int64_t n_positions = 0;
  std::vector<float> a, b;
  for (const auto& seq : sequences) {
    const int64_t n = static_cast<int64_t>(seq.size());
    a.resize(static_cast<size_t>(n * V));
    b.resize(a.size());
    engine::KVCache ca = engine::make_kv_cache(reference, n), cb = engine::make_kv_cache(test, n);
    engine::forward(reference, ca, seq, true, a.data());
    engine::forward(test, cb, seq, true, b.data());
    double seq_total = 0;
#pragma omp parallel for reduction(+ : seq_total) schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      engine::log_softmax(a.data() + t * V, V, a.data() + t * V);
      engine::log_softmax(b.data() + t * V, V, b.data() + t * V);
      seq_total += kl_divergence(a.data() + t * V, b.data() + t * V, V);
    }
    total += seq_total;
    n_positions += n;
  }
  return n_positions ? total / static_cast<double>(n_positions) : 0.0;
}

TensorKL::TensorKL(const engine::Model& model, std::vector<std::vector<int32_t>> sequences, bool keep_reference)
    : model_(model) {
  // Consecutive sequences of equal length run as one batch of up to kMaxBatchTokens tokens:
  // larger matrix products, the same numbers.
  constexpr size_t kMaxBatchTokens = 1024;
  for (size_t i = 0; i < sequences.size();) {
    std::vector<int32_t> batch = sequences[i];
    int64_t n_seq = 1;
    size_t j = i + 1;
    for (; j < sequences.size() && sequences[j].size() == sequences[i].size() &&
           batch.size() + sequences[j].size() <= kMaxBatchTokens;
         ++j, ++n_seq)
      batch.insert(batch.end(), sequences[j].begin(), sequences[j].end());
    inputs_.push_back(engine::capture_block_inputs(model, batch, n_seq));
    n_positions_ += static_cast<int64_t>(batch.size());
    i = j;
  }
  if (keep_reference) {
    reference_.resize(inputs_.size());
    for (size_t s = 0; s < inputs_.size(); ++s) logprobs(s, model.hp.n_layer, {}, reference_[s]);
  }
}

void TensorKL::logprobs(size_t s, int64_t first, const engine::WeightSwap& swap, std::vector<float>& out,
                        const engine::KVCacheConfig& kv) const {
  const int64_t n = inputs_[s].n_tokens, V = model_.hp.n_vocab;
  out.resize(static_cast<size_t>(n * V));
  engine::forward_from_block(model_, inputs_[s], first, swap, out.data(), kv);
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) engine::log_softmax(out.data() + t * V, V, out.data() + t * V);
}

double TensorKL::mean_kl_from(int64_t first, const engine::WeightSwap& swap, const engine::KVCacheConfig& kv) const {
  const int64_t V = model_.hp.n_vocab;
  double total = 0;
  std::vector<float> ref, quant;
  for (size_t s = 0; s < inputs_.size(); ++s) {
    if (reference_.empty()) logprobs(s, model_.hp.n_layer, {}, ref);
    const std::vector<float>& r = reference_.empty() ? ref : reference_[s];
    logprobs(s, first, swap, quant, kv);
    const int64_t n = inputs_[s].n_tokens;
    double seq_total = 0;
#pragma omp parallel for reduction(+ : seq_total) schedule(static)
    for (int64_t t = 0; t < n; ++t) seq_total += kl_divergence(r.data() + t * V, quant.data() + t * V, V);
    total += seq_total;
  }
  return total / static_cast<double>(n_positions_);
}

double TensorKL::measure(const engine::Weight& original, const engine::Weight& replacement) const {
  return mean_kl_from(engine::block_of(model_, original), {&original, &replacement}, {});
}

double TensorKL::measure_kv_cache(const engine::KVCacheConfig& kv, int64_t first_block) const {
  return mean_kl_from(first_block, {}, kv);
}

}  // namespace optiq::sensitivity
