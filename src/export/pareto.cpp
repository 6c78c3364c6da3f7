#include "io/ggml_type_label.h"
#include "export/pareto.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "alloc/budget.h"
#include "alloc/knapsack.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "eval/held_out_text.h"
#include "eval/kl_divergence.h"
#include "eval/logits_file.h"
#include "eval/perplexity.h"
#include "export/mixed_convert.h"
#include "export/mixed_file.h"
#include "export/quantize_model.h"
#include "io/imatrix_file.h"
#include "model/tokenizer.h"
#include "sensitivity/candidates.h"
#include "sensitivity/checkpoint.h"
#include "sensitivity/measure.h"
#include "sensitivity/tensor_kl.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/json_file.h"
#include "util/list_parse.h"
#include "util/sha256.h"

namespace optiq {
namespace {

namespace fs = std::filesystem;

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string sha256_of_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  Sha256 h;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) h.update(buf.data(), static_cast<size_t>(in.gcount()));
  }
  return h.hex();
}

std::string type_list(const std::vector<GgmlType>& types) {
  std::string s;
  for (GgmlType t : types) s += (s.empty() ? "" : ",") + ggml_type_label(t);
  return s;
}

// What the convert folder gives: its measurements, importance matrix and options.
struct ConvertRun {
  sensitivity::CheckpointContents checkpoint;
  fs::path imatrix_path;
  Imatrix imatrix;
  std::vector<GgmlType> candidates;
  std::vector<sensitivity::ProtectRule> protect;
  bool keep_stored = true;  // the convert run also offered each quantized tensor's stored type
};

// "bits 4,8" or "Q3_K,Q4_K" as optiq-report.json records --candidate-bits / --candidate-types.
std::vector<GgmlType> candidates_from_label(const std::string& label, const fs::path& report) {
  if (!label.starts_with("bits ")) return sensitivity::parse_candidate_types(label, report.string().c_str());
  const std::vector<int> bits = parse_int_list(label.substr(5), report.string().c_str());
  return sensitivity::candidate_types_from_bits(bits, report.string().c_str());
}

ConvertRun read_convert_run(const ModelSource& source, const ParetoOptions& o) {
  ConvertRun run;
  const fs::path checkpoint = o.convert_dir / "sensitivity.jsonl";
  if (!fs::exists(checkpoint))
    throw InputError(o.convert_dir.string(), std::nullopt,
                     "has no sensitivity.jsonl: run `optiq convert MODEL -o " + o.convert_dir.string() +
                         "` first (pareto reuses its measurements), or name its folder with --sensitivity-from");
  run.checkpoint = sensitivity::read_checkpoint(checkpoint);
  const nlohmann::json& header = run.checkpoint.header;
  if (!header.is_object() || !header.contains("model") || !header["model"].is_string())
    throw InputError(checkpoint.string(), 0, "has no header line with the model's fingerprint: not a convert checkpoint");
  const std::string fingerprint = sensitivity::model_fingerprint(source);
  if (header["model"].get<std::string>() != fingerprint)
    throw InputError(checkpoint.string(), 0,
                     "was measured for another model (model sha256 " + header["model"].get<std::string>() + ", " +
                         source.path + " has " + fingerprint + ")");
  if (!header.contains("version") || header["version"] != sensitivity::kCheckpointVersion)
    throw InputError(checkpoint.string(), 0,
                     "was written by another version of optiq convert (checkpoint version " +
                         (header.contains("version") ? header["version"].dump() : std::string("none")) + ", this one " +
                         std::to_string(sensitivity::kCheckpointVersion) + "): run optiq convert again");
  run.imatrix_path = o.convert_dir / "imatrix.gguf";
  if (!fs::exists(run.imatrix_path))
    throw InputError(o.convert_dir.string(), std::nullopt,
                     "has no imatrix.gguf (the importance matrix the convert run quantized with); run optiq convert without --dry-run");
  run.imatrix = read_imatrix_file(run.imatrix_path.string());

  const fs::path report = o.convert_dir / "optiq-report.json";
  if (fs::exists(report)) {
    const nlohmann::json j = read_json_file(report);
    if (!j.is_object() || !j.contains("options") || !j["options"].is_object())
      throw InputError(report.string(), std::nullopt, "is not an optiq-report.json (no options object)");
    const auto& options = j["options"];
    if (o.candidates.empty() && options.contains("candidates") && options["candidates"].is_string())
      run.candidates = candidates_from_label(options["candidates"].get<std::string>(), report);
    if (options.contains("keep_stored") && options["keep_stored"].is_boolean())
      run.keep_stored = options["keep_stored"].get<bool>();
    if (options.contains("protect") && options["protect"].is_array())
      for (const auto& p : options["protect"])
        if (p.is_string()) run.protect.push_back(sensitivity::parse_protect_rule(p.get<std::string>()));
  }
  if (!o.candidates.empty()) run.candidates = o.candidates;
  if (run.candidates.empty())
    throw InputError(o.convert_dir.string(), std::nullopt,
                     "has no optiq-report.json naming the candidate types; give them with --candidate-types");
  return run;
}

// The previous pareto.json's points, by file name, when it evaluated the same text the same way.
// `reference_ppl` is set from it too.
std::map<std::string, ParetoPoint> previous_points(const fs::path& path, ParetoResult& r) {
  std::map<std::string, ParetoPoint> out;
  if (!fs::exists(path)) return out;
  const nlohmann::json j = nlohmann::json::parse(read_text_file(path), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("evaluation") || !j.contains("points")) return out;
  const nlohmann::json want = {{"reference", r.reference}, {"text_sha256", r.text_sha256}, {"n_ctx", r.n_ctx},
                               {"n_chunks", r.n_chunks}};
  for (const auto& [k, v] : want.items())
    if (!j["evaluation"].contains(k) || j["evaluation"][k] != v) return out;
  if (j.contains("reference_ppl") && j["reference_ppl"].is_number()) r.reference_ppl = j["reference_ppl"].get<double>();
  for (const auto& p : j["points"]) {
    if (!p.is_object()) continue;
    ParetoPoint q;
    try {
      q.file = p.at("file").get<std::string>();
      q.sha256 = p.at("sha256").get<std::string>();
      q.plan_sha256 = p.at("plan_sha256").get<std::string>();
      q.kld = p.at("kld").get<double>();
      q.kld_error = p.at("kld_error").get<double>();
      q.ppl = p.at("ppl").get<double>();
    } catch (const nlohmann::json::exception&) {
      continue;  // an entry this version cannot use is measured again
    }
    out[q.file] = q;
  }
  return out;
}

// A file to make and measure.
struct PlannedPoint {
  ParetoPoint point;
  QuantizeOptions options;  // the writer's options (the plan points into them)
  TensorTypeList types;     // optiq points: the allocation
};

std::string plan_identity(const QuantizePlan& plan, const std::string& imatrix_sha256) {
  Sha256 h;
  h.update(imatrix_sha256);
  for (const auto& t : plan.tensors) {
    h.update(t.source->name);
    h.update("=" + std::string(ggml_type_name(t.to)) + "\n");
  }
  return h.hex();
}

std::string bpw_text(double bpw) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", bpw);
  return buf;
}

// Mean KLD (± its standard error) against the base and perplexity of the GGUF at `file`.
void measure_file(const fs::path& file, const eval::LogitsFile& base, int64_t n_chunks, const eval::ChunkSetup& setup,
                  std::FILE* sink, ParetoPoint& point) {
  const engine::Model model = engine::load_model(open_model_source(file));
  const eval::KldResult k = eval::compute_kl_divergence(model, base, n_chunks, setup, sink, sink);
  const double n = static_cast<double>(k.sums.count);
  point.kld = k.sums.kld / n;
  const double var = k.sums.kld2 / n - point.kld * point.kld;
  point.kld_error = n > 1 && var > 0 ? std::sqrt(var / (n - 1)) : 0.0;
  point.ppl = std::exp(k.sums.nll / n);
}

}  // namespace

ParetoResult run_pareto(const ModelSource& source, const ParetoOptions& o) {
  using Clock = std::chrono::steady_clock;
  engine::set_num_threads(o.threads);
  ParetoResult r;
  r.source_path = source.path;
  r.convert_dir = o.convert_dir.string();
  r.model_name = model_file_stem(source);
  r.reference = sensitivity::model_fingerprint(source);
  const ConvertRun run = read_convert_run(source, o);
  r.candidates = type_list(run.candidates);

  // Every (tensor, candidate) pair the allocation needs must have been measured.
  const auto candidates = sensitivity::plan_candidates(source, run.candidates, run.protect, run.keep_stored);
  if (candidates.empty()) throw InputError(source.path, std::nullopt, "has no tensor llama.cpp would quantize");
  std::vector<alloc::TensorChoices> choices;
  size_t n_missing = 0;
  std::string first_missing;
  for (const auto& c : candidates) {
    alloc::TensorChoices tc;
    tc.name = c.source->name;
    for (GgmlType type : c.types) {
      const auto it = run.checkpoint.kl.find({c.source->name, std::string(ggml_type_name(type))});
      if (it == run.checkpoint.kl.end()) {
        if (n_missing++ == 0) first_missing = c.source->name + " at " + ggml_type_label(type);
        continue;
      }
      tc.candidates.push_back({type, sensitivity::tensor_bytes_as(*c.source, type), it->second});
    }
    choices.push_back(std::move(tc));
  }
  if (n_missing)
    throw InputError((o.convert_dir / "sensitivity.jsonl").string(), std::nullopt,
                     "does not cover the candidates " + r.candidates + ": " + std::to_string(n_missing) +
                         " (tensor, type) pairs were never measured, the first " + first_missing +
                         " (run optiq convert with these candidates first, or choose --candidate-types it measured)");

  QuantizeOptions base;
  base.imatrix = imatrix_importance(run.imatrix);
  base.imatrix_path = "imatrix.gguf";
  base.imatrix_datasets = run.imatrix.datasets;
  base.imatrix_chunks = run.imatrix.chunk_count;
  base.threads = o.threads;
  const std::string imatrix_sha256 = sha256_of_file(run.imatrix_path);

  // Parameters, and the bytes of tensors that are never quantized.
  QuantizeOptions probe = base;
  probe.recipe.mix = QuantMix::Q8_0;
  const QuantizePlan probe_plan = plan_quantization(source, probe);
  r.n_params = probe_plan.n_params;
  uint64_t fixed_bytes = 0;
  for (const auto& p : probe_plan.tensors) {
    const bool quantizable =
        std::any_of(candidates.begin(), candidates.end(), [&](const auto& c) { return c.source == p.source; });
    if (!quantizable) fixed_bytes += p.bytes_to;
  }
  uint64_t smallest = fixed_bytes, largest = fixed_bytes;
  for (const auto& c : choices) {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (const auto& k : c.candidates) lo = std::min(lo, k.bytes), hi = std::max(hi, k.bytes);
    smallest += lo, largest += hi;
  }

  // The files: optiq's sweep, the recipes, the uniform types.
  std::vector<PlannedPoint> planned;
  for (double bpw : o.bpw) {
    const uint64_t budget = alloc::bytes_for_bpw(bpw, r.n_params);
    if (budget < smallest || budget > largest) {
      char why[160];
      std::snprintf(why, sizeof why, "%s bpw: the candidates %s make files of %.3f to %.3f bpw", bpw_text(bpw).c_str(),
                    r.candidates.c_str(), alloc::bits_per_weight(smallest, r.n_params), alloc::bits_per_weight(largest, r.n_params));
      r.skipped.push_back(why);
      continue;
    }
    const alloc::SolvedAllocation solved = alloc::allocate_best(choices, budget - fixed_bytes);
    PlannedPoint p;
    p.point.label = "optiq " + bpw_text(bpw);
    p.point.kind = "optiq";
    p.point.file = "optiq-" + bpw_text(bpw) + "bpw.gguf";
    p.point.target_bpw = bpw;
    p.point.predicted_kl = solved.best.cost;
    for (size_t i = 0; i < candidates.size(); ++i)
      p.types.emplace_back(candidates[i].source, choices[i].candidates[solved.best.choice[i]].type);
    p.options = base;
    planned.push_back(std::move(p));
  }
  for (QuantMix mix : o.recipes) {
    PlannedPoint p;
    p.point.label = std::string(quant_mix_name(mix));
    p.point.kind = "recipe";
    p.point.file = "recipe-" + p.point.label + ".gguf";
    p.options = base;
    p.options.recipe.mix = mix;
    planned.push_back(std::move(p));
  }
  for (GgmlType type : o.uniform) {
    PlannedPoint p;
    p.point.label = "uniform " + ggml_type_label(type);
    p.point.kind = "uniform";
    p.point.file = "uniform-" + ggml_type_label(type) + ".gguf";
    p.options = base;
    p.options.recipe.mix = file_type_for(type);
    p.options.recipe.pure = true;
    planned.push_back(std::move(p));
  }

  // The text and the reference's log-probabilities on it.
  fs::create_directories(o.output_dir);
  std::string text;
  if (o.text.empty()) {
    text = eval::held_out_text(eval::default_shared_dir());
    r.text_path = (o.output_dir / "held-out.txt").string();
    write_file_atomically(r.text_path, text);
  } else {
    r.text_path = o.text.string();
  }
  text = eval::read_perplexity_text(r.text_path);
  Sha256 text_hash;
  text_hash.update(text);
  r.text_sha256 = text_hash.hex();
  const Tokenizer tok = load_tokenizer(source.path);
  if (tok.add_eos) throw InputError(source.path, std::nullopt, "the vocabulary appends EOS to every text, which perplexity does not support");
  const std::vector<int32_t> tokens = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
  engine::Model reference = engine::load_model(source);
  r.n_ctx = std::min<int64_t>(o.n_ctx, reference.hp.n_ctx_train);
  if (eval::scored_per_chunk(r.n_ctx) < 1) throw InputError("-c", std::nullopt, "a context of " + std::to_string(r.n_ctx) + " tokens scores nothing");
  const int64_t available = static_cast<int64_t>(tokens.size()) / r.n_ctx;
  if (available < 1)
    throw InputError(r.text_path, std::nullopt,
                     "tokenizes to " + std::to_string(tokens.size()) + " tokens, less than one chunk of " + std::to_string(r.n_ctx));
  r.n_chunks = std::min(o.n_chunks, available);
  r.n_scored = r.n_chunks * eval::scored_per_chunk(r.n_ctx);
  eval::ChunkSetup setup;
  setup.n_ctx = r.n_ctx;
  setup.bos = tok.add_bos ? tok.bos : -1;
  const std::span<const int32_t> evaluated = std::span(tokens).first(static_cast<size_t>(r.n_chunks * r.n_ctx));
  const fs::path base_path = o.output_dir / "reference.kld";
  const fs::path json_path = o.output_dir / "pareto.json";
  const auto previous = previous_points(json_path, r);  // sets r.reference_ppl when it matches
  bool base_ok = false;
  if (fs::exists(base_path) && r.reference_ppl > 0) {
    try {
      const eval::LogitsFile old(base_path.string());
      base_ok = old.n_ctx() == r.n_ctx && old.n_chunk() == r.n_chunks && old.n_vocab() == reference.hp.n_vocab &&
                std::equal(evaluated.begin(), evaluated.end(), old.tokens().begin());
    } catch (const InputError&) {
      base_ok = false;  // torn or foreign: computed again
    }
  }
  // The per-chunk tables of perplexity and KL divergence are not printed.
  const std::unique_ptr<std::FILE, int (*)(std::FILE*)> sink_file(std::fopen("/dev/null", "w"), &std::fclose);
  if (!sink_file) throw RuntimeError("cannot open /dev/null");
  std::FILE* sink = sink_file.get();
  if (!base_ok) {
    // The reference: the source with every quantizable weight dequantized to f32, as convert's.
    for (const auto& c : candidates) {
      engine::Weight& w = sensitivity::weight_by_name(reference, c.source->name);
      if (w.type != GgmlType::F32) w = sensitivity::quantized_copy(w, GgmlType::F32, nullptr);
    }
    std::fprintf(stderr, "pareto: reference log-probabilities over %lld chunks of %lld tokens\n",
                 static_cast<long long>(r.n_chunks), static_cast<long long>(r.n_ctx));
    eval::LogitsFileWriter writer(base_path.string(), static_cast<int32_t>(r.n_ctx), static_cast<int32_t>(reference.hp.n_vocab), evaluated);
    r.reference_ppl = eval::compute_perplexity(reference, tokens, r.n_chunks, setup, &writer, sink, sink).final.ppl;
    writer.commit();
  }
  const eval::LogitsFile base_logits(base_path.string());

  // Make and measure each point, or reuse it.
  for (size_t i = 0; i < planned.size(); ++i) {
    PlannedPoint& p = planned[i];
    ParetoPoint& point = p.point;
    const QuantizePlan plan = p.types.empty() ? plan_quantization(source, p.options) : plan_mixed_file(source, p.options, p.types);
    point.plan_sha256 = plan_identity(plan, imatrix_sha256);
    point.bytes = plan.bytes_to;
    point.bpw = alloc::bits_per_weight(point.bytes, r.n_params);
    const fs::path file = o.output_dir / point.file;
    const auto it = previous.find(point.file);
    if (it != previous.end() && it->second.plan_sha256 == point.plan_sha256 && fs::exists(file) &&
        sha256_of_file(file) == it->second.sha256) {
      point.sha256 = it->second.sha256;
      point.kld = it->second.kld;
      point.kld_error = it->second.kld_error;
      point.ppl = it->second.ppl;
      point.reused = true;
    } else {
      const auto t0 = Clock::now();
      p.options.output_path = file.string();
      write_quantized(source, plan, p.options);
      point.sha256 = sha256_of_file(file);
      measure_file(file, base_logits, r.n_chunks, setup, sink, point);
      std::fprintf(stderr, "pareto: [%zu/%zu] %-16s %9.3f MB %7.3f bpw  KLD %.6f  PPL %.4f  (%.1f s)\n", i + 1, planned.size(),
                   point.label.c_str(), static_cast<double>(point.bytes) / 1e6, point.bpw, point.kld, point.ppl,
                   std::chrono::duration<double>(Clock::now() - t0).count());
    }
    r.points.push_back(point);
    write_pareto_json(json_path, r);  // after every point: a killed run resumes from here
  }
  return r;
}

}  // namespace optiq
