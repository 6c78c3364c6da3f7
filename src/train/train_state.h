// The resume file of a training run: every factor and its AdamW moments, the step reached and
// the record so far, in one safetensors file (tensors "<target>.a", ".b", ".m_a", ".v_a",
// ".m_b", ".v_b"; metadata "optiq_train_state" holding the JSON of step, fingerprint and record),
// written atomically so that a kill at any moment leaves the previous state whole.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "train/lora_model.h"
#include "train/trainer.h"

namespace optiq::train {

// AdamW's moment estimates of one factor pair, shaped as its a and b.
struct FactorMoments {
  std::vector<float> m_a, v_a;  // [rank, n_in]
  std::vector<float> m_b, v_b;  // [n_out, rank]
};

struct TrainState {
  std::string fingerprint;             // what was trained: model, data, options
  int64_t step = 0;                    // optimizer steps done
  std::vector<FactorMoments> moments;  // [adapter.size()]
  TrainRecord record;                  // curves and counters so far
};

// A record as JSON (train_curve, valid_curve, counters, seconds) and back; from_json throws
// nlohmann's exceptions for a malformed one (callers name the file).
nlohmann::json record_to_json(const TrainRecord& r);
TrainRecord record_from_json(const nlohmann::json& j);

void save_train_state(const std::filesystem::path& path, const TrainableAdapter<float>& adapter, const TrainState& state);

// Fills `adapter`'s factors (which must have the saved targets, ranks and shapes) and returns
// the state. Throws InputError naming the file for a state of another adapter layout or a
// damaged file.
TrainState load_train_state(const std::filesystem::path& path, TrainableAdapter<float>& adapter);

// The fingerprint stored in a state file, or nullopt when there is no file.
std::optional<std::string> train_state_fingerprint(const std::filesystem::path& path);

}  // namespace optiq::train
