// `optiq convert` (the main job): a mixed-precision GGUF whose per-tensor types are chosen by
// measurement. Steps: the calibration mix is rendered for the model and cut into sequences;
// one pass records the importance matrix; every quantizable tensor is measured at every
// candidate type (mean KL divergence of the next-token distribution with only that tensor
// quantized, or the --sensitivity fast proxy), resumably; a multiple-choice knapsack picks the
// types of least predicted total KL within the size budget; the file is written with the
// importance matrix, and its real KL is measured on held-out sequences (the additivity check).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "calib/mix.h"
#include "model/model_source.h"
#include "sensitivity/candidates.h"

namespace optiq {

struct MixedConvertOptions {
  std::filesystem::path output_dir;       // the GGUF, report, model card, tensor types, checkpoint
  std::string calibration_mix = "optiq";  // "optiq" or a .jsonl path
  calib::CalibrationOptions calibration;  // seq_len, n_calibration, held-out share
  size_t n_held_out = 4;                  // held-out sequences for the additivity check
  std::vector<GgmlType> candidates;       // requested types (before per-shape fallback)
  std::string candidates_label;           // as the user gave them, for the report
  std::optional<double> target_bpw;       // --target-bpw
  std::string target_size = "Q4_K_M";     // --target-size: bytes with a unit, or a mix name
  std::vector<sensitivity::ProtectRule> protect;
  bool keep_stored = true;                // a quantized source tensor's own type is a candidate
  bool fast = false;                      // --sensitivity fast: imatrix proxy, no forward passes
  bool reference_q8_0 = false;            // --reference q8_0: the model runs as Q8_0 while measuring
  bool dry_run = false;                   // print the plan, write nothing
  bool baselines = false;                 // also write the nearest llama.cpp mix and uniform type
  int threads = 1;
  std::optional<double> target_tps;        // --target-tps: predicted decode tokens/s to reach
  bool size_budget = true;                 // false: --target-tps alone constrains the allocation
  int tps_threads = 0;                     // the latency calibration's thread count (0: threads)
  std::filesystem::path latency_cache;     // the latency calibration file ("" : the default)
};

// One quantizable tensor's options and the choice made.
struct TensorAllocation {
  const SourceTensor* source = nullptr;
  std::vector<GgmlType> types;   // candidates, ascending in bits per weight
  std::vector<uint64_t> bytes;   // [types] size of the tensor in each
  std::vector<double> cost;      // [types] measured KL (nats) or proxy
  size_t chosen = 0;             // index into types
  std::map<GgmlType, double> other_cost;  // costs of comparison-only types (the reference mix's)
};

// A whole-model alternative priced with the same measurements.
struct Alternative {
  std::string label;      // "uniform Q4_K", "Q4_K_M"
  uint64_t bytes = 0;     // tensor data, whole file
  double predicted = 0;   // sum of per-tensor costs (NaN when a pair was not measured)
  double measured = -1;   // held-out KL of the written file (baselines), or -1
  std::string file;       // written file name, or ""
};

struct MixedConvertResult {
  std::string model_name;
  std::string source_path;
  std::string gguf_file;                 // name inside output_dir ("" for a dry run)
  std::vector<calib::DomainCount> domains;
  size_t n_calibration_tokens = 0;
  size_t n_held_out_tokens = 0;
  std::vector<TensorAllocation> tensors;  // in llama.cpp's order
  uint64_t n_params = 0;
  uint64_t fixed_bytes = 0;               // tensors that are never quantized
  uint64_t budget_bytes = 0;              // the target, whole file
  std::string budget_label;               // how it was given
  uint64_t total_bytes = 0;               // chosen, whole file
  double greedy_cost = 0, exact_cost = 0; // objectives of the two solvers
  bool exact_proven = false;
  std::string solver;                     // "greedy" or "exact": the one used
  double predicted = 0;                   // sum of the chosen costs
  double measured = -1;                   // held-out mean KL of the written file (-1: not measured)
  std::vector<Alternative> alternatives;  // uniform types and the reference mix
  double spearman = 0;                    // fast mode with an exact checkpoint present, else NaN
  size_t n_measured = 0, n_resumed = 0;   // sensitivity pairs measured now / from the checkpoint
  std::map<std::string, double> seconds;  // per step
  std::vector<std::string> warnings;
  double target_tps = 0, predicted_tps = 0;  // --target-tps and the chosen allocation's prediction (0: none)
  std::string speed_method;               // how the two budgets were met (alloc/two_budgets.h)
};

// The model's general.name (or its file name) made safe as a file name: "SmolLM2-135M-Instruct".
std::string model_file_stem(const ModelSource& source);

MixedConvertResult mixed_convert(const ModelSource& source, const MixedConvertOptions& options);

// The files beside the GGUF (export/convert_outputs.cpp).
void write_report_json(const std::filesystem::path& path, const MixedConvertResult& r, const MixedConvertOptions& o);
void write_model_card(const std::filesystem::path& path, const MixedConvertResult& r, const MixedConvertOptions& o);
// llama-quantize --tensor-type-file: one anchored "^name$=type" per quantizable tensor.
void write_tensor_types(const std::filesystem::path& path, const MixedConvertResult& r);
std::string tensor_type_pattern(const std::string& name);  // "^blk\.0\.attn_q\.weight$"

}  // namespace optiq
