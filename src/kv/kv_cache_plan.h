// `optiq kv-cache`: measure every layer's K and V sensitivity to each candidate cache type over
// the calibration mix (resumably), choose the types for an average-bits target, and write
// kv_config.json, kv-report.json and kv-sensitivity.svg into the output folder. The
// measurements are appended to kv-sensitivity.jsonl as they are made; a rerun with the same
// model, tokens and options measures only what is missing.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "calib/mix.h"
#include "engine/kv_cache.h"
#include "kv/kv_allocation.h"
#include "kv/kv_report.h"
#include "model/model_source.h"

namespace optiq::kv {

struct KVCacheOptions {
  std::filesystem::path output_dir;       // kv_config.json, kv-report.json, the SVG, the checkpoint
  std::vector<engine::KVType> candidates; // any order; deduplicated and sorted by size
  double target_bits = 4.5;               // average bits per cached value over all K and V
  std::string calibration_mix = "optiq";  // "optiq" or a .jsonl path
  calib::CalibrationOptions calibration;  // seq_len, n_calibration, held-out share
  bool hadamard = true;                   // rotate quantized heads as llama.cpp does
  engine::TurboF16Rows turbo_f16;         // f16 rows beside TurboQuant codes (kv_cache.h)
  int threads = 1;
};

struct KVCacheResult {
  KVPlan plan;
  KVRunInfo info;
  std::vector<KVAlternative> alternatives;  // mixed, f16, each uniform candidate
};

// The whole command. Options are checked against the model (candidate blocks vs head width,
// the target vs the candidates' range, the sequence length vs the trained context) before
// anything is measured; each failure is one InputError.
KVCacheResult plan_kv_cache(const ModelSource& source, const KVCacheOptions& options);

}  // namespace optiq::kv
