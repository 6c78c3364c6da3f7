// The damage one quantized tensor does to a model's output, measured exactly: the mean KL
// divergence KL(P_ref || P_quant) of the next-token distributions over calibration tokens,
// where P_ref comes from the model as loaded and P_quant from the same model with one weight
// replaced by its quantized copy. Only the blocks from the replaced weight's block onward are
// re-run; each sequence's block inputs are computed once (engine::BlockInputCache).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/model.h"
#include "io/ggml_type.h"
#include "model/model_source.h"

namespace optiq::sensitivity {

// w's values quantized to `type` (row by row, with optional per-column importance [w.n_in]),
// as a Weight of that type (F32, F16 and BF16 are converted instead). `source`, when given, is the
// tensor w was loaded from, and the values are read from it rather than from w: the
// measurement then quantizes the source weights even when the model holds a cheaper stand-in
// (--reference q8_0). Throws std::invalid_argument when w's rows are not whole blocks of `type`.
engine::Weight quantized_copy(const engine::Weight& w, GgmlType type, const float* importance,
                              const SourceTensor* source = nullptr);

// What weight w (loaded from `tensor`) becomes in a file that stores it as `type`. A tensor
// written in the type it is already stored in keeps its bytes (optiq's writer copies them, as
// llama-quantize does), so that candidate is the stored bytes themselves; any other type is
// quantized_copy of w, or of the source values when `from_source`.
engine::Weight candidate_weight(const engine::Weight& w, const SourceTensor& tensor, GgmlType type,
                                const float* importance, bool from_source);

// KL(P || Q) for one position, from log-probabilities: sum_v exp(lp[v]) (lp[v] - lq[v]). [n] each.
double kl_divergence(const float* lp, const float* lq, int64_t n);

// Mean KL(P_ref || P_test) over every position of `sequences`, each run from position 0 through
// both whole models (the measured counterpart of a sum of per-tensor predictions).
double mean_kl(const engine::Model& reference, const engine::Model& test,
               const std::vector<std::vector<int32_t>>& sequences);

class TensorKL {
 public:
  // `sequences`: token sequences evaluated from position 0 (each must fit the model's context).
  // Every position of every sequence is scored. `keep_reference`: store the reference
  // log-probabilities ([tokens, n_vocab] floats per sequence) instead of recomputing them
  // from the cached final hidden states at each measurement (half the head's work, much more
  // memory for large vocabularies).
  TensorKL(const engine::Model& model, std::vector<std::vector<int32_t>> sequences, bool keep_reference);

  // Mean KL over all scored positions with `original` (a weight of the model) multiplied as
  // `replacement`.
  double measure(const engine::Weight& original, const engine::Weight& replacement) const;
  // Mean KL over all scored positions with the KV caches of blocks first_block.. stored as
  // `kv` says (the reference keeps an F32 cache), re-running from first_block.
  double measure_kv_cache(const engine::KVCacheConfig& kv, int64_t first_block) const;

  int64_t n_positions() const { return n_positions_; }

 private:
  // Log-probabilities [n, n_vocab] of sequence s with `swap` and caches `kv`, from block `first` on.
  void logprobs(size_t s, int64_t first, const engine::WeightSwap& swap, std::vector<float>& out,
                const engine::KVCacheConfig& kv = {}) const;
  // Mean KL against the reference of the log-probabilities logprobs(s, first, swap, kv) gives.
  double mean_kl_from(int64_t first, const engine::WeightSwap& swap, const engine::KVCacheConfig& kv) const;

  const engine::Model& model_;
  std::vector<engine::BlockInputCache> inputs_;  // [batches] of equal-length sequences
  std::vector<std::vector<float>> reference_;    // [batches][n * n_vocab] when kept
  int64_t n_positions_ = 0;
};

}  // namespace optiq::sensitivity
