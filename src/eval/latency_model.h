// A decode latency model for this CPU: the time of one decoded token is a fixed overhead plus,
// for every weight the token reads, the bytes it reads times a per-byte cost of its type:
//   t = c0 + sum_types a[type] * bytes[type]
// where bytes[type] sums the weights stored as that type (every matmul weight whole, the token
// embedding one row when the head is a separate matrix). c0 (norms, attention over the context,
// softmax, thread wake-ups) and a[] (memory traffic and the type's dot kernel) are fitted by
// non-negative least squares on relative error from measured decode runs of the same model
// shape at the same thread count. Time per weight is additive, so the time of an allocation is
// a sum over tensors and a time budget is a knapsack budget like a size budget.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/model.h"
#include "io/ggml_type.h"

namespace optiq::eval {

// Bytes one decoded token reads from the weights, by storage type.
using TypeBytes = std::map<GgmlType, double>;

// A weight a decoded token reads: a matmul weight whole, or one row of a lookup table.
struct DecodeWeight {
  const engine::Weight* weight = nullptr;  // into the model
  bool lookup = false;                     // the token embedding, when the head is separate
};
// Every weight a decoded token reads: the token embedding, each layer's seven matrices, the head.
std::vector<DecodeWeight> decode_weights(const engine::Model& model);

// Per-token weight bytes of a weight stored as `type`: n_out rows of n_in values, or one row
// for a lookup table (the token embedding when the head is a separate matrix).
double weight_bytes_per_token(GgmlType type, int64_t n_in, int64_t n_out, bool lookup);

// The model's per-token bytes, each weight as `type_of(weight)` (default: its stored type).
TypeBytes decode_bytes(const engine::Model& model);
TypeBytes decode_bytes(const engine::Model& model, const std::map<std::string, GgmlType>& type_of_weight);

struct LatencyFit {
  double overhead_seconds = 0;                // c0
  std::map<GgmlType, double> seconds_per_byte;  // a[type]
  // Seconds per decoded token; throws InputError naming the first type with no coefficient.
  double predict_seconds(const TypeBytes& bytes) const;
};

// Non-negative least squares on relative error: minimises sum_i ((predicted_i - s_i) / s_i)^2
// over c0 >= 0, a[] >= 0, for runs (bytes_i, s_i seconds per token). Throws std::invalid_argument
// when there are fewer runs than unknowns or a run's time is not positive.
LatencyFit fit_latency(const std::vector<TypeBytes>& runs, const std::vector<double>& seconds);

// What a calibration is valid for: this CPU, this thread count, this model shape, and the
// number of decoded tokens the timings average over (the attention share grows with context).
struct LatencyKey {
  std::string cpu;    // /proc/cpuinfo "model name"
  int threads = 1;
  std::string shape;  // "llama L5 E64 F172 H8/4 V512"
  int64_t n_gen = 0;  // tokens decoded per timed run, from an empty context (0 in a lookup: any)
  std::string text() const;  // the cache entry's key
};
std::string cpu_model_name();
std::string model_shape(const engine::HParams& hp);

// The cache file: $OPTIQ_CACHE_DIR, else $XDG_CACHE_HOME/optiq, else ~/.cache/optiq, then
// latency.json: {"entries": {key: {"overhead_seconds", "seconds_per_byte": {type: a},
// "runs": [...]}}}.
std::filesystem::path default_latency_cache();

struct CalibrationRecord {
  std::string label;   // "uniform Q4_K", "random mix 2"
  TypeBytes bytes;     // per-token bytes by type
  double seconds = 0;  // measured seconds per token (mean over repetitions)
};

// Adds or replaces the entry for `key` (atomically rewritten file).
void save_latency_fit(const std::filesystem::path& cache, const LatencyKey& key, const LatencyFit& fit,
                      const std::vector<CalibrationRecord>& runs);
// The entry for `key` (with key.n_gen 0: the first entry of that CPU, thread count and shape),
// or nullopt. Throws InputError for a malformed file.
std::optional<LatencyFit> load_latency_fit(const std::filesystem::path& cache, const LatencyKey& key);

}  // namespace optiq::eval
