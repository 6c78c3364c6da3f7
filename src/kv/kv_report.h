// What `optiq kv-cache` writes: kv_config.json (read_kv_config's list form), kv-report.json
// (per layer K and V: the KL of every candidate and the chosen type; totals; the memory of the
// mixed, f16 and each uniform cache at 4K and 32K context), a summary on stdout and
// kv-sensitivity.svg (kv_plot.h).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "kv/kv_allocation.h"

namespace optiq::kv {

// Context lengths the report prices every configuration at.
inline constexpr int64_t kReportContexts[] = {4096, 32768};

// One way to store the cache, priced per position and at kReportContexts.
struct KVAlternative {
  std::string label;             // "mixed", "f16", "uniform q4_0"
  uint64_t bytes_per_position = 0;  // all layers' K and V
  double bits = 0;               // average bits per cached value (codes and scales, per position)
  double predicted = 0;          // sum of per-slot KL (NaN when not measured, e.g. f16)
  // What the bytes beside the per-position rows depend on (engine::kv_turbo_fixed_bytes): the
  // TurboQuant sides' f16 rows and key statistics.
  std::vector<engine::LayerKVTypes> layers;  // [n_layer]
  int64_t row_width = 0;                     // n_head_kv * head_dim
  engine::TurboF16Rows turbo_f16;
  // The cache's bytes at n_ctx positions, as LayerKVCache counts them.
  uint64_t bytes_at(int64_t n_ctx) const;
};

// The mixed plan, f16, and every candidate as a uniform cache; TurboQuant sides priced with
// turbo_f16's rows.
std::vector<KVAlternative> kv_alternatives(const KVPlan& plan, int64_t n_head_kv, int64_t head_dim,
                                           const engine::TurboF16Rows& turbo_f16);

// Facts about the run the report records besides the plan.
struct KVRunInfo {
  std::string model;           // the model path as given
  std::string model_sha256;    // sensitivity::model_fingerprint
  std::string calibration_mix; // path of the mix
  size_t seq_len = 0;          // tokens per calibration sequence
  size_t n_sequences = 0;      // calibration sequences
  bool hadamard = true;        // quantized heads Walsh-Hadamard-rotated, as llama.cpp does
  engine::TurboF16Rows turbo_f16;  // f16 rows beside TurboQuant codes the measurements used
  size_t measured = 0;         // (slot, type) pairs measured in this run
  size_t resumed = 0;          // pairs taken from the checkpoint
  double measure_seconds = 0;  // time spent measuring in this run
};

// {"layers": [{"k": TYPE, "v": TYPE}, ...]}, the form read_kv_config reads, with "turbo_f16"
// (the rows the measurements used) when a chosen type is TurboQuant.
nlohmann::ordered_json kv_config_json(const KVPlan& plan, const engine::TurboF16Rows& turbo_f16);
nlohmann::ordered_json kv_report_json(const KVPlan& plan, const KVRunInfo& info,
                                      const std::vector<KVAlternative>& alternatives);

// The per-slot table (KL per candidate, chosen marked), the totals and the memory comparison.
void print_kv_summary(const KVPlan& plan, const std::vector<KVAlternative>& alternatives);

}  // namespace optiq::kv
