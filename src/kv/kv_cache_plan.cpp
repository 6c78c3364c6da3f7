#include "kv/kv_cache_plan.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "engine/kv_config.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "kv/kv_plot.h"
#include "kv/kv_sensitivity.h"
#include "sensitivity/checkpoint.h"
#include "sensitivity/measure.h"
#include "sensitivity/tensor_kl.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace optiq::kv {
namespace {

// Reference log-probabilities are kept in memory up to this size; beyond it they are
// recomputed from the cached final hidden states at every measurement.
constexpr uint64_t kMaxReferenceBytes = 1ull << 30;

std::vector<std::vector<int32_t>> calibration_sequences(const ModelSource& source, const KVCacheOptions& o,
                                                        std::string& mix_path) {
  const std::filesystem::path path = calib::resolve_calibration_mix(o.calibration_mix);
  mix_path = path.string();
  const calib::CalibrationSet set = calib::build_calibration_set(calib::read_calibration_mix(path), source.path, o.calibration);
  if (set.calibration.empty())
    throw InputError(mix_path, std::nullopt,
                     "gives no whole sequence of " + std::to_string(o.calibration.seq_len) + " tokens (lower --seq-len)");
  std::vector<std::vector<int32_t>> sequences;
  for (const auto& s : set.calibration) sequences.push_back(s.tokens);
  std::printf("calibration mix %s: %zu sequences of %zu tokens (", mix_path.c_str(), sequences.size(),
              o.calibration.seq_len);
  for (size_t i = 0; i < set.calibration.size(); ++i)
    std::printf("%s%s", i ? ", " : "", set.calibration[i].domain.c_str());
  std::printf(")\n");
  for (const auto& w : set.warnings) std::printf("warning: %s\n", w.c_str());
  std::fflush(stdout);
  return sequences;
}

}  // namespace

KVCacheResult plan_kv_cache(const ModelSource& source, const KVCacheOptions& o) {
  KVCacheResult r;
  engine::set_num_threads(o.threads);
  const engine::Model model = engine::load_model(source);
  const engine::HParams& hp = model.hp;
  r.plan = plan_kv_budget(o.candidates, hp.n_layer, hp.n_head_kv, hp.head_dim, o.target_bits);
  if (static_cast<int64_t>(o.calibration.seq_len) > hp.n_ctx_train)
    throw InputError("--seq-len", std::nullopt,
                     std::to_string(o.calibration.seq_len) + " tokens is longer than the model's trained context (" +
                         std::to_string(hp.n_ctx_train) + ")");

  r.info.model = source.path;
  r.info.model_sha256 = sensitivity::model_fingerprint(source);
  r.info.seq_len = o.calibration.seq_len;
  r.info.hadamard = o.hadamard;
  r.info.turbo_f16 = o.turbo_f16;
  const auto sequences = calibration_sequences(source, o, r.info.calibration_mix);
  r.info.n_sequences = sequences.size();

  nlohmann::json header = {
      {"format", "optiq-kv-sensitivity"},
      {"version", 1},
      {"model", r.info.model_sha256},
      {"calibration_tokens", sensitivity::tokens_fingerprint(sequences)},
      {"reference", "f32 cache"},
      {"hadamard", o.hadamard},
  };
  // TurboQuant candidates are measured with the f16 rows they will run with.
  if (std::ranges::any_of(r.plan.types, engine::kv_type_is_turbo))
    header["turbo_f16"] = engine::turbo_f16_json(o.turbo_f16);
  std::filesystem::create_directories(o.output_dir);
  const std::filesystem::path checkpoint_path = o.output_dir / "kv-sensitivity.jsonl";
  sensitivity::SensitivityCheckpoint checkpoint(checkpoint_path, header, /*read_only=*/false);
  if (!checkpoint.invalidated().empty())
    std::printf("checkpoint %s does not match this run (%s): measuring again; the old file is kept as "
                "kv-sensitivity.jsonl.stale\n",
                checkpoint_path.string().c_str(), checkpoint.invalidated().c_str());
  if (checkpoint.n_resumed())
    std::printf("resuming from %s: %zu measurements already made\n", checkpoint_path.string().c_str(), checkpoint.n_resumed());

  const size_t missing = count_missing(r.plan.slots, r.plan.types, checkpoint);
  r.info.resumed = r.plan.slots.size() * r.plan.types.size() - missing;
  if (missing > 0) {
    uint64_t positions = 0;
    for (const auto& s : sequences) positions += s.size();
    const bool keep = positions * static_cast<uint64_t>(hp.n_vocab) * sizeof(float) <= kMaxReferenceBytes;
    const auto t0 = std::chrono::steady_clock::now();
    const sensitivity::TensorKL kl(model, sequences, keep);
    std::printf("reference (f32 cache) over %llu positions in %.1f s; measuring %zu of %zu (slot, type) pairs\n",
                static_cast<unsigned long long>(positions),
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), missing,
                r.plan.slots.size() * r.plan.types.size());
    std::fflush(stdout);
    engine::KVCacheConfig storage;
    storage.hadamard = o.hadamard;
    storage.turbo_f16 = o.turbo_f16;
    const KVMeasureStats stats = measure_kv_sensitivity(model, kl, r.plan.slots, r.plan.types, storage, checkpoint);
    r.info.measured = stats.measured;
    r.info.measure_seconds = stats.seconds;
  }

  allocate_kv(r.plan, kl_table(r.plan.slots, r.plan.types, checkpoint));
  r.alternatives = kv_alternatives(r.plan, hp.n_head_kv, hp.head_dim, o.turbo_f16);

  write_file_atomically(o.output_dir / "kv_config.json", kv_config_json(r.plan, o.turbo_f16).dump(2) + "\n");
  write_file_atomically(o.output_dir / "kv-report.json", kv_report_json(r.plan, r.info, r.alternatives).dump(2) + "\n");
  const std::string title = std::filesystem::path(source.path).filename().string() + ": KV cache sensitivity per layer";
  write_file_atomically(o.output_dir / "kv-sensitivity.svg", kv_sensitivity_svg(r.plan, title));

  print_kv_summary(r.plan, r.alternatives);
  std::printf("measured %zu, resumed %zu (%.1f s measuring); wrote %s, kv-report.json, kv-sensitivity.svg in %s\n",
              r.info.measured, r.info.resumed, r.info.measure_seconds, "kv_config.json", o.output_dir.string().c_str());
  return r;
}

}  // namespace optiq::kv
