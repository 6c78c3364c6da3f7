// `optiq pareto`: the size/quality trade-off of a model as a sweep. From the sensitivity a
// previous `optiq convert` measured (its sensitivity.jsonl and imatrix.gguf; nothing is
// measured again), the knapsack of `optiq convert` picks an allocation for every requested
// bits-per-weight target; each is written as a GGUF with the same importance matrix, beside
// llama.cpp's recipes and uniform types (as `optiq quantize` makes them, with that imatrix), and
// every file's mean KL divergence against the reference (the source dequantized to f32) and
// perplexity are measured on a held-out text, as `optiq perplexity --kl-divergence` measures
// them. Points already measured (same plan, same file hash, same evaluation) are reused.
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "io/ggml_type.h"
#include "model/model_source.h"
#include "quant/recipe.h"

namespace optiq {

struct ParetoOptions {
  std::filesystem::path output_dir;   // GGUFs, base logits, held-out text, pareto.{json,md,svg}
  std::filesystem::path convert_dir;  // the `optiq convert` folder whose measurements are reused
  std::vector<double> bpw;            // sweep targets, bits per weight over the whole file
  std::vector<GgmlType> candidates;   // empty: the convert run's (from its optiq-report.json)
  std::vector<QuantMix> recipes;      // llama.cpp mixes to compare with
  std::vector<GgmlType> uniform;      // uniform types to compare with (--pure)
  std::filesystem::path text;         // held-out text; empty: bench/convert_results.py's
  int64_t n_ctx = 512;                // tokens per evaluation chunk
  int64_t n_chunks = 8;               // chunks evaluated (at most what the text holds)
  int threads = 1;
};

struct ParetoPoint {
  std::string label;        // "optiq 4.5", "Q4_K_M", "uniform Q4_K"
  std::string kind;         // "optiq", "recipe" or "uniform"
  std::string file;         // GGUF name inside output_dir
  std::string sha256;       // of the file
  std::string plan_sha256;  // of its per-tensor types and the importance matrix: the point's identity
  uint64_t bytes = 0;       // tensor data over the whole file
  double bpw = 0;           // bytes × 8 / parameters
  double target_bpw = 0;    // optiq points: the requested bpw (0 otherwise)
  double predicted_kl = 0;  // optiq points: sum of the per-tensor KL of the choice, calibration nats (0 otherwise)
  double kld = 0;           // mean KL divergence from the reference over the scored tokens, nats
  double kld_error = 0;     // its standard error
  double ppl = 0;           // perplexity of the text
  bool reused = false;      // taken from a previous pareto.json, not measured in this run
};

struct ParetoResult {
  std::string model_name;
  std::string source_path;
  std::string convert_dir;
  std::string candidates;           // the candidate types, "Q4_K,Q8_0"
  uint64_t n_params = 0;
  std::string text_path;            // the evaluated text (written into output_dir when built)
  std::string reference;            // model fingerprint of the source (SHA-256)
  std::string text_sha256;          // of the text's bytes
  int64_t n_ctx = 0, n_chunks = 0;  // as evaluated
  int64_t n_scored = 0;             // tokens scored per file
  double reference_ppl = 0;         // perplexity of the reference on the text
  std::vector<ParetoPoint> points;  // optiq's sweep first (by bpw), then recipes, then uniform types
  std::vector<std::string> skipped; // targets the candidates cannot reach, with the reason
};

ParetoResult run_pareto(const ModelSource& source, const ParetoOptions& options);

// export/pareto_report.cpp: the outputs. pareto.json also holds what resuming compares.
void write_pareto_json(const std::filesystem::path& path, const ParetoResult& r);
void write_pareto_markdown(const std::filesystem::path& path, const ParetoResult& r);
std::string pareto_svg(const ParetoResult& r);
void print_pareto_table(std::FILE* out, const ParetoResult& r);

}  // namespace optiq
