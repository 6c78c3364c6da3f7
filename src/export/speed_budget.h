// `optiq convert --target-tps X`: the decode latency model (eval/latency_model.h) prices every
// candidate of every tensor in predicted seconds per token, and 1 / X, less the fixed overhead
// and the weights that are not candidates, is the time budget of the allocation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "alloc/knapsack.h"
#include "engine/model.h"
#include "eval/latency_model.h"

namespace optiq {

inline constexpr double kPicosecondsPerSecond = 1e12;  // the knapsack's integer time unit

// The calibration `optiq latency MODEL --calibrate -t threads` saved for this CPU and model
// shape (whatever its -n); `cache` "" is the default file. Throws InputError
// naming the command to run when there is none.
eval::LatencyFit latency_fit_for(const engine::Model& model, int threads, const std::filesystem::path& cache);

struct SpeedBudget {
  std::vector<std::vector<uint64_t>> time_ps;  // [tensors][candidates] predicted picoseconds per token
  uint64_t budget_ps = 0;                      // for the candidates together
  double fixed_seconds = 0;                    // overhead + weights that are not candidates, per token
};

// Throws InputError when the fit lacks a candidate's type, or the fixed time alone exceeds 1 / X.
SpeedBudget speed_budget(const engine::Model& model, const eval::LatencyFit& fit,
                         const std::vector<alloc::TensorChoices>& choices, double target_tps);

// Predicted tokens/s of choosing `choice[i]` for every tensor.
double predicted_tps(const SpeedBudget& s, const std::vector<size_t>& choice);

}  // namespace optiq
