// The measured side of the decode latency model (latency_model.h): a model's weights re-stored
// in memory as other types (no file is written), and decode runs timed the way `optiq
// benchmark -p 0 -n N` times them. `calibrate_latency` runs one uniform assignment per type and
// a few seeded random mixes, then fits the model.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/model.h"
#include "eval/latency_model.h"

namespace optiq::eval {

// Weight name -> storage type, for the weights a decoded token reads (see decode_bytes).
using WeightTypes = std::map<std::string, GgmlType>;

// Every matmul weight (the token embedding included) as `type`, or the type llama.cpp falls
// back to where its rows are not whole blocks of it.
WeightTypes uniform_weight_types(const engine::Model& model, GgmlType type);
// Each weight a type drawn from `types` (seeded, reproducible), with the same fallback.
WeightTypes random_weight_types(const engine::Model& model, const std::vector<GgmlType>& types, uint64_t seed);

// A copy of `model` whose weights have the given types (quantized from the current values;
// weights not listed, or already of their type, are copied as they are).
engine::Model retyped_model(const engine::Model& model, const WeightTypes& types);

// Median over `repetitions` of the seconds per token of decoding n_gen tokens from an empty
// context (after one untimed warm-up token), as `optiq benchmark -p 0 -n N` decodes them.
// `cpu_time`: the process's CPU time instead of wall time. With one thread that is the time
// the token took on the core, without the waits for a core another job holds, so timings on a
// shared machine are what an idle one would give (with more threads it would add them up).
double measure_decode_seconds(const engine::Model& model, int64_t n_gen, int repetitions, bool cpu_time);

struct CalibrationOptions {
  std::vector<GgmlType> types;  // uniform runs, one per type
  int n_random_mixes = 4;       // extra runs with random per-weight types from `types`
  int64_t n_gen = 64;           // tokens per timed decode
  int repetitions = 3;
  bool cpu_time = false;        // see measure_decode_seconds
};

struct Calibration {
  LatencyFit fit;
  std::vector<CalibrationRecord> runs;
};

// `on_run(record)` is called after each timed run (progress).
Calibration calibrate_latency(const engine::Model& model, const CalibrationOptions& options,
                              const std::function<void(const CalibrationRecord&)>& on_run = {});

}  // namespace optiq::eval
