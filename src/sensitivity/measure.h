// The measurement loop of `optiq convert`: for every (tensor, candidate type) pair the mean KL
// divergence with only that tensor quantized (TensorKL), resumed from and recorded in a
// SensitivityCheckpoint, with a progress bar and ETA on stderr.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/model.h"
#include "model/model_source.h"
#include "sensitivity/checkpoint.h"
#include "sensitivity/tensor_kl.h"

namespace optiq::sensitivity {

struct MeasureJob {
  const SourceTensor* source = nullptr;  // the tensor, as stored in the model source
  std::vector<GgmlType> types;           // types to measure it at
};

struct MeasureStats {
  size_t measured = 0;          // pairs measured in this run
  size_t resumed = 0;           // pairs found in the checkpoint
  double quantize_seconds = 0;  // making the quantized copies
  double forward_seconds = 0;   // re-running the model and scoring
};

// The model's weight loaded from the source tensor `name`; throws std::invalid_argument when
// the model has no such weight (the tensor is not a matmul weight of the engine).
const engine::Weight& weight_by_name(const engine::Model& model, const std::string& name);
engine::Weight& weight_by_name(engine::Model& model, const std::string& name);

// w's entry in an importance map ([w.n_in] values), or null when it has none of that size.
const float* importance_for(const std::map<std::string, std::vector<float>>& importance, const engine::Weight& w);

// Measures every pair not already in `checkpoint` and records it there. `importance`: per
// weight name, the per-column importance used when quantizing ([n_in]), as the written file
// will use it. `from_source`: quantize from the source tensors rather than the model's
// weights (the model holds a stand-in reference, e.g. --reference q8_0).
MeasureStats measure_sensitivity(const engine::Model& model, const TensorKL& kl,
                                 const std::vector<MeasureJob>& jobs,
                                 const std::map<std::string, std::vector<float>>& importance,
                                 bool from_source, SensitivityCheckpoint& checkpoint);

// Content hashes for the checkpoint header (SHA-256, hex): every tensor's name, type, shape
// and bytes; the token sequences in order.
std::string model_fingerprint(const ModelSource& source);
std::string tokens_fingerprint(const std::vector<std::vector<int32_t>>& sequences);

}  // namespace optiq::sensitivity
