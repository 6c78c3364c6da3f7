#include "export/mixed_convert.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

#include "alloc/budget.h"
#include "alloc/knapsack.h"
#include "alloc/two_budgets.h"
#include "calib/imatrix.h"
#include "engine/threads.h"
#include "export/mixed_file.h"
#include "export/quantize_model.h"
#include "export/speed_budget.h"
#include "io/imatrix_file.h"
#include "quant/recipe.h"
#include "sensitivity/measure.h"
#include "sensitivity/proxy.h"
#include "util/error.h"
#include "util/progress.h"

namespace optiq {
namespace {

using Clock = std::chrono::steady_clock;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// Reference log-probabilities are kept in memory up to this size; beyond it they are
// recomputed from the cached final hidden states at every measurement.
constexpr uint64_t kMaxReferenceBytes = 1ull << 30;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
double mb(uint64_t bytes) { return static_cast<double>(bytes) / 1e6; }

std::string model_name(const ModelSource& source) {
  if (auto name = source.metadata.get_string("general.name"); name && !name->empty()) return *name;
  std::filesystem::path p(source.path);
  return p.has_stem() ? p.stem().string() : p.filename().string();
}

// The mixes a --baselines file is chosen from.
constexpr QuantMix kBaselineMixes[] = {QuantMix::Q2_K, QuantMix::Q3_K_S, QuantMix::Q3_K_M, QuantMix::Q3_K_L,
                                       QuantMix::Q4_K_S, QuantMix::Q4_K_M, QuantMix::Q5_K_S, QuantMix::Q5_K_M,
                                       QuantMix::Q6_K, QuantMix::Q8_0};
constexpr GgmlType kUniformTypes[] = {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                                      GgmlType::Q6_K, GgmlType::Q8_0};

double cost_of(const TensorAllocation& t, GgmlType type) {
  for (size_t i = 0; i < t.types.size(); ++i)
    if (t.types[i] == type) return t.cost[i];
  const auto it = t.other_cost.find(type);
  return it == t.other_cost.end() ? kNaN : it->second;
}

QuantizeOptions writer_options(const std::map<std::string, std::vector<float>>& importance, const std::string& mix_path,
                               size_t n_sequences, int threads) {
  QuantizeOptions w;
  w.imatrix = importance;
  w.imatrix_path = "imatrix.gguf";
  w.imatrix_datasets = {mix_path};
  w.imatrix_chunks = static_cast<int32_t>(n_sequences);
  w.threads = threads;
  return w;
}

void write_with_progress(const ModelSource& source, const QuantizePlan& plan, const QuantizeOptions& w,
                         const char* label) {
  ProgressBar bar(label, plan.tensors.size(), 1, "tensors");
  write_quantized(source, plan, w, [&](size_t i) { bar.update(i + 1); });
  bar.finish();
}

double measure_file(const engine::Model& reference, const std::filesystem::path& gguf,
                    const std::vector<std::vector<int32_t>>& held_out) {
  const ModelSource written = open_model_source(gguf);
  const engine::Model test = engine::load_model(written);
  return sensitivity::mean_kl(reference, test, held_out);
}

// Whole-file bytes and predicted cost of giving every tensor `type_of(tensor)`.
template <class TypeOf>
Alternative price(const std::string& label, const std::vector<TensorAllocation>& tensors, uint64_t fixed, TypeOf type_of) {
  Alternative a;
  a.label = label;
  a.bytes = fixed;
  for (const auto& t : tensors) {
    const GgmlType type = type_of(t);
    a.bytes += sensitivity::tensor_bytes_as(*t.source, type);
    a.predicted += cost_of(t, type);
  }
  return a;
}

// --baselines: the llama.cpp mix and the uniform K-quant nearest in size to the chosen file,
// written with the same importance matrix and measured on the same held-out tokens.
void write_baselines(const ModelSource& source, const engine::Model& reference,
                     const std::vector<std::vector<int32_t>>& held_out, const QuantizeOptions& base,
                     const std::filesystem::path& dir, MixedConvertResult& r) {
  struct Choice {
    std::string label;
    QuantizeOptions options;
    uint64_t gap = UINT64_MAX;  // |its size - the chosen file's size|
  };
  auto consider = [&](Choice& best, const std::string& label, const QuantizeOptions& q) {
    uint64_t bytes = 0;
    try {
      bytes = plan_quantization(source, q).bytes_to;
    } catch (const InputError&) {
      return;  // e.g. a type whose rows need an importance matrix entry the model lacks
    }
    const uint64_t gap = bytes > r.total_bytes ? bytes - r.total_bytes : r.total_bytes - bytes;
    if (gap < best.gap) best = {label, q, gap};
  };
  Choice mix, uniform;
  for (QuantMix m : kBaselineMixes) {
    QuantizeOptions q = base;
    q.recipe.mix = m;
    consider(mix, std::string(quant_mix_name(m)), q);
  }
  for (GgmlType t : kUniformTypes) {
    QuantizeOptions q = base;
    q.recipe.mix = file_type_for(t);
    q.recipe.pure = true;
    consider(uniform, "uniform-" + std::string(ggml_type_name(t)), q);
  }
  std::printf("measured on the held-out tokens:\n  %-34s %10s %8s %14s\n", "file", "MB", "bpw", "mean KL");
  std::printf("  %-34s %10.3f %8.3f %14.6e\n", r.gguf_file.c_str(), mb(r.total_bytes),
              alloc::bits_per_weight(r.total_bytes, r.n_params), r.measured);
  for (Choice* c : {&mix, &uniform}) {
    if (c->gap == UINT64_MAX) continue;
    Alternative a;
    a.label = c->label + " (baseline)";
    a.file = "baseline-" + c->label + ".gguf";
    c->options.output_path = (dir / a.file).string();
    const QuantizePlan plan = plan_quantization(source, c->options);  // points into c->options
    write_with_progress(source, plan, c->options, "baseline");
    a.bytes = plan.bytes_to;
    for (const auto& p : plan.tensors)
      for (const auto& t : r.tensors)
        if (t.source == p.source) a.predicted += cost_of(t, p.to);
    a.measured = measure_file(reference, c->options.output_path, held_out);
    std::printf("  %-34s %10.3f %8.3f %14.6e\n", a.file.c_str(), mb(a.bytes), alloc::bits_per_weight(a.bytes, r.n_params),
                a.measured);
    r.alternatives.push_back(std::move(a));
  }
}

void print_timings(const MixedConvertResult& r) {
  std::printf("timings:");
  for (const auto& [step, s] : r.seconds) std::printf(" %s %.1f s;", step.c_str(), s);
  std::printf("\n");
}

}  // namespace

std::string model_file_stem(const ModelSource& source) {
  std::string stem = model_name(source);
  std::replace_if(stem.begin(), stem.end(), [](char c) { return c == '/' || c == ' ' || c == '\\' || c == ':'; }, '-');
  return stem;
}

MixedConvertResult mixed_convert(const ModelSource& source, const MixedConvertOptions& o) {
  MixedConvertResult r;
  r.model_name = model_name(source);
  r.source_path = source.path;
  engine::set_num_threads(o.threads);

  // Calibration tokens.
  auto t0 = Clock::now();
  const std::filesystem::path mix_path = calib::resolve_calibration_mix(o.calibration_mix);
  const calib::CalibrationMix mix = calib::read_calibration_mix(mix_path);
  const calib::CalibrationSet set = calib::build_calibration_set(mix, source.path, o.calibration);
  if (set.calibration.empty())
    throw InputError(mix_path.string(), std::nullopt,
                     "gives no whole sequence of " + std::to_string(o.calibration.seq_len) +
                         " tokens for calibration (lower --seq-len)");
  std::vector<std::vector<int32_t>> sequences, held_out;
  for (const auto& s : set.calibration) sequences.push_back(s.tokens);
  for (size_t i = 0; i < set.held_out.size() && i < o.n_held_out; ++i) held_out.push_back(set.held_out[i].tokens);
  r.domains = set.domains;
  r.warnings = set.warnings;
  for (const auto& s : sequences) r.n_calibration_tokens += s.size();
  for (const auto& s : held_out) r.n_held_out_tokens += s.size();
  std::printf("calibration mix %s: %zu sequences of %zu tokens (%zu held out for the additivity check)\n",
              mix_path.string().c_str(), sequences.size(), o.calibration.seq_len, held_out.size());
  std::printf("  %-14s %8s %8s %10s %9s\n", "domain", "samples", "tokens", "sequences", "held out");
  for (const auto& d : set.domains)
    std::printf("  %-14s %8zu %8zu %10zu %9zu\n", d.domain.c_str(), d.samples, d.tokens, d.calibration, d.held_out);
  for (const auto& w : set.warnings) std::printf("warning: %s\n", w.c_str());
  std::fflush(stdout);
  r.seconds["calibration"] = seconds_since(t0);

  // The model and its importance matrix over the calibration tokens.
  t0 = Clock::now();
  engine::Model model = engine::load_model(source);
  r.seconds["load"] = seconds_since(t0);
  t0 = Clock::now();
  const Imatrix imatrix = compute_sequence_imatrix(model, sequences);
  const auto importance = imatrix_importance(imatrix);
  r.seconds["imatrix"] = seconds_since(t0);

  // Candidates, and the llama.cpp mix the result is compared with.
  const std::vector<sensitivity::TensorCandidates> candidates = plan_candidates(source, o.candidates, o.protect, o.keep_stored);
  if (candidates.empty()) throw InputError(source.path, std::nullopt, "has no tensor llama.cpp would quantize");
  const std::optional<QuantMix> target_mix =
      o.target_bpw ? std::nullopt : quant_mix_from_name(o.target_size);
  const QuantMix compare_mix = target_mix.value_or(QuantMix::Q4_K_M);
  QuantizeOptions compare_options = writer_options(importance, mix_path.string(), sequences.size(), o.threads);
  compare_options.recipe.mix = compare_mix;
  const QuantizePlan compare_plan = plan_quantization(source, compare_options);
  std::map<std::string, GgmlType> compare_type;
  for (const auto& p : compare_plan.tensors) compare_type[p.source->name] = p.to;

  r.n_params = compare_plan.n_params;
  for (const auto& p : compare_plan.tensors) {
    const bool quantizable = std::any_of(candidates.begin(), candidates.end(),
                                         [&](const auto& c) { return c.source == p.source; });
    if (!quantizable) r.fixed_bytes += p.bytes_to;
  }

  std::vector<sensitivity::MeasureJob> jobs;
  for (const auto& c : candidates) {
    sensitivity::MeasureJob job{c.source, c.types};
    const GgmlType extra = compare_type.at(c.source->name);
    if (std::find(job.types.begin(), job.types.end(), extra) == job.types.end()) job.types.push_back(extra);
    jobs.push_back(std::move(job));
  }

  // The reference every measurement is compared with: the source weights in f32 (so that no
  // activation rounding of the stored type is in it), or with --reference q8_0 a cheaper
  // Q8_0 stand-in (rows permitting); candidates are then quantized from the source tensors.
  const bool from_source = o.reference_q8_0;
  for (const auto& c : candidates) {
    engine::Weight& w = sensitivity::weight_by_name(model, c.source->name);
    const GgmlType ref_type = o.reference_q8_0 && w.n_in % 32 == 0 ? GgmlType::Q8_0 : GgmlType::F32;
    if (w.type != ref_type) w = sensitivity::quantized_copy(w, ref_type, nullptr);
  }

  // Sensitivity: measured (resumable) or the fast proxy.
  const nlohmann::json header = {
      {"format", "optiq-sensitivity"},
      {"version", sensitivity::kCheckpointVersion},
      {"model", sensitivity::model_fingerprint(source)},
      {"calibration_tokens", sensitivity::tokens_fingerprint(sequences)},
      {"reference", o.reference_q8_0 ? "q8_0" : "source"},
      {"importance", "calibration imatrix"},
  };
  const std::filesystem::path checkpoint_path = o.output_dir / "sensitivity.jsonl";
  if (!o.dry_run) std::filesystem::create_directories(o.output_dir);
  std::map<std::pair<std::string, GgmlType>, double> costs;
  r.spearman = kNaN;
  t0 = Clock::now();
  if (o.fast) {
    sensitivity::SensitivityCheckpoint exact(checkpoint_path, header, /*read_only=*/true);
    std::vector<double> proxy_values, exact_values;
    ProgressBar bar("proxy", jobs.size(), 1, "tensors");
    for (size_t i = 0; i < jobs.size(); ++i) {
      const engine::Weight& w = sensitivity::weight_by_name(model, jobs[i].source->name);
      const float* imp_data = sensitivity::importance_for(importance, w);
      const bool lookup = &w == &model.token_embd;
      for (GgmlType type : jobs[i].types) {
        const double v = sensitivity::proxy_error(w, *jobs[i].source, type, imp_data, lookup, from_source);
        costs[{w.name, type}] = v;
        if (auto kl = exact.find(w.name, type)) {
          proxy_values.push_back(v);
          exact_values.push_back(*kl);
        }
      }
      bar.update(i + 1);
    }
    bar.finish();
    r.spearman = sensitivity::spearman_correlation(proxy_values, exact_values);
    if (!proxy_values.empty())
      std::printf("fast proxy vs the %zu exact measurements in %s: Spearman rho = %.4f\n", proxy_values.size(),
                  checkpoint_path.string().c_str(), r.spearman);
    r.seconds["sensitivity"] = seconds_since(t0);
  } else {
    sensitivity::SensitivityCheckpoint checkpoint(checkpoint_path, header, o.dry_run);
    if (!checkpoint.invalidated().empty())
      std::printf("checkpoint %s does not match this run (%s): measuring again%s\n", checkpoint_path.string().c_str(),
                  checkpoint.invalidated().c_str(), o.dry_run ? "" : "; the old file is kept as sensitivity.jsonl.stale");
    if (checkpoint.n_resumed())
      std::printf("resuming from %s: %zu measurements already made\n", checkpoint_path.string().c_str(),
                  checkpoint.n_resumed());
    uint64_t positions = 0;
    for (const auto& s : sequences) positions += s.size();
    const bool keep = positions * static_cast<uint64_t>(model.hp.n_vocab) * sizeof(float) <= kMaxReferenceBytes;
    const sensitivity::TensorKL kl(model, sequences, keep);
    r.seconds["reference"] = seconds_since(t0);
    t0 = Clock::now();
    const auto stats = sensitivity::measure_sensitivity(model, kl, jobs, importance, from_source, checkpoint);
    r.n_measured = stats.measured;
    r.n_resumed = stats.resumed;
    r.seconds["sensitivity"] = seconds_since(t0);
    r.seconds["sensitivity.quantize"] = stats.quantize_seconds;
    r.seconds["sensitivity.forward"] = stats.forward_seconds;
    for (const auto& job : jobs)
      for (GgmlType type : job.types) costs[{job.source->name, type}] = *checkpoint.find(job.source->name, type);
  }

  // Allocation.
  t0 = Clock::now();
  std::vector<alloc::TensorChoices> choices;
  for (const auto& c : candidates) {
    TensorAllocation t;
    t.source = c.source;
    t.types = c.types;
    alloc::TensorChoices tc;
    tc.name = c.source->name;
    for (GgmlType type : c.types) {
      t.bytes.push_back(sensitivity::tensor_bytes_as(*c.source, type));
      t.cost.push_back(costs.at({c.source->name, type}));
      tc.candidates.push_back({type, t.bytes.back(), t.cost.back()});
    }
    const GgmlType extra = compare_type.at(c.source->name);
    if (std::find(c.types.begin(), c.types.end(), extra) == c.types.end()) t.other_cost[extra] = costs.at({c.source->name, extra});
    r.tensors.push_back(std::move(t));
    choices.push_back(std::move(tc));
  }

  if (o.target_bpw) {
    r.budget_bytes = alloc::bytes_for_bpw(*o.target_bpw, r.n_params);
    char label[64];
    std::snprintf(label, sizeof label, "%.3f bpw", *o.target_bpw);
    r.budget_label = label;
  } else if (target_mix) {
    r.budget_bytes = compare_plan.bytes_to;
    r.budget_label = "the size of llama.cpp's " + std::string(quant_mix_name(*target_mix));
  } else if (auto bytes = alloc::parse_byte_size(o.target_size)) {
    r.budget_bytes = *bytes;
    r.budget_label = o.target_size;
  } else {
    throw InputError("--target-size", std::nullopt,
                     "'" + o.target_size + "' is neither a size (300MB, 1.2GiB, bytes) nor a mix (" +
                         supported_quant_mixes() + ")");
  }
  uint64_t smallest = r.fixed_bytes, largest = r.fixed_bytes;
  for (const auto& t : r.tensors) {
    smallest += t.bytes.front();
    largest += t.bytes.back();
  }
  if (!o.size_budget) {
    r.budget_bytes = largest;
    r.budget_label = "none (--target-tps only)";
  }
  auto size_text = [&](uint64_t b) {
    char s[96];
    std::snprintf(s, sizeof s, "%.3f MB, %.3f bpw", mb(b), alloc::bits_per_weight(b, r.n_params));
    return std::string(s);
  };
  const char* option = o.target_bpw ? "--target-bpw" : "--target-size";
  if (r.budget_bytes < smallest)
    throw InputError(option, std::nullopt,
                     r.budget_label + " (" + size_text(r.budget_bytes) + ") is below the smallest file these candidates make (" +
                         size_text(smallest) + ", every tensor at its lowest candidate); add lower candidates or raise the target");
  if (r.budget_bytes > largest)
    throw InputError(option, std::nullopt,
                     r.budget_label + " (" + size_text(r.budget_bytes) + ") is above the largest file these candidates make (" +
                         size_text(largest) + ", every tensor at its highest candidate); add higher candidates or lower the target");
  const uint64_t budget = r.budget_bytes - r.fixed_bytes;
  alloc::SolvedAllocation solved;
  if (o.target_tps) {
    const SpeedBudget speed =
        speed_budget(model, latency_fit_for(model, o.tps_threads > 0 ? o.tps_threads : o.threads, o.latency_cache), choices, *o.target_tps);
    const alloc::TwoBudgetResult two = alloc::allocate_two_budgets(choices, speed.time_ps, budget, speed.budget_ps);
    solved = two.solved;
    r.target_tps = *o.target_tps;
    r.predicted_tps = predicted_tps(speed, solved.best.choice);
    r.speed_method = two.method;
  } else {
    solved = alloc::allocate_best(choices, budget);
  }
  r.greedy_cost = solved.greedy_cost;
  r.exact_cost = solved.exact_cost;
  r.exact_proven = solved.exact_proven;
  r.solver = solved.solver;
  const alloc::Allocation& best = solved.best;
  for (size_t i = 0; i < r.tensors.size(); ++i) r.tensors[i].chosen = best.choice[i];
  r.total_bytes = r.fixed_bytes + best.bytes;
  r.predicted = best.cost;
  r.seconds["allocation"] = seconds_since(t0);

  for (GgmlType want : o.candidates)
    r.alternatives.push_back(price("uniform " + std::string(ggml_type_name(want)), r.tensors, r.fixed_bytes,
                                   [&](const TensorAllocation& t) {
                                     bool fell_back = false;
                                     return fit_row(want, {t.source->name, t.source->shape, t.source->type}, fell_back);
                                   }));
  r.alternatives.push_back(price(std::string(quant_mix_name(compare_mix)), r.tensors, r.fixed_bytes,
                                 [&](const TensorAllocation& t) { return compare_type.at(t.source->name); }));

  // The plan.
  const size_t n = r.tensors.size();
  for (size_t i = 0; i < n; ++i) {
    const TensorAllocation& t = r.tensors[i];
    std::printf("[%4zu/%4zu] %-34s", i + 1, n, t.source->name.c_str());
    for (size_t k = 0; k < t.types.size(); ++k)
      std::printf(" %s%-6s %9.3e%s", k == t.chosen ? "*" : " ", std::string(ggml_type_name(t.types[k])).c_str(), t.cost[k],
                  k + 1 < t.types.size() ? " |" : "");
    std::printf("  -> %s\n", std::string(ggml_type_name(t.types[t.chosen])).c_str());
  }
  const char* unit = o.fast ? "proxy" : "nats";
  std::printf("budget: %s = %s\n", r.budget_label.c_str(), size_text(r.budget_bytes).c_str());
  std::printf("solvers: greedy sum %.6e %s, exact sum %.6e %s (%s, %llu nodes); using %s\n", r.greedy_cost, unit,
              r.exact_cost, unit, r.exact_proven ? "proven optimal" : "node budget reached",
              static_cast<unsigned long long>(solved.exact_nodes), r.solver.c_str());
  std::printf("chosen: %s, predicted KL %.6e %s\n", size_text(r.total_bytes).c_str(), r.predicted, unit);
  if (o.target_tps)
    std::printf("speed: predicted %.2f tokens/s for a target of %.2f (%s)\n", r.predicted_tps, r.target_tps, r.speed_method.c_str());
  for (const auto& a : r.alternatives)
    std::printf("  vs %-14s %s, predicted KL %.6e %s\n", a.label.c_str(), size_text(a.bytes).c_str(), a.predicted, unit);
  std::fflush(stdout);
  if (o.dry_run) {
    print_timings(r);
    return r;
  }

  // The file, then its real KL on held-out sequences.
  t0 = Clock::now();
  QuantizeOptions w = writer_options(importance, mix_path.string(), sequences.size(), o.threads);
  TensorTypeList chosen_types;
  for (const auto& t : r.tensors) chosen_types.emplace_back(t.source, t.types[t.chosen]);
  r.gguf_file = model_file_stem(source) + "-optiq.gguf";
  w.output_path = (o.output_dir / r.gguf_file).string();
  const QuantizePlan plan = plan_mixed_file(source, w, chosen_types);
  if (plan.bytes_to != r.total_bytes)
    throw std::logic_error("mixed_convert: the writer's plan (" + std::to_string(plan.bytes_to) +
                           " bytes) differs from the allocation (" + std::to_string(r.total_bytes) + ")");
  write_with_progress(source, plan, w, "write");
  write_imatrix_gguf((o.output_dir / "imatrix.gguf").string(), imatrix);
  write_tensor_types(o.output_dir / "tensor-types.txt", r);
  r.seconds["write"] = seconds_since(t0);

  t0 = Clock::now();
  if (!held_out.empty()) {
    r.measured = measure_file(model, w.output_path, held_out);
    std::printf("additivity check on %zu held-out tokens: predicted (sum of per-tensor KL) %.6e, measured %.6e nats (measured/predicted %.3f)\n",
                r.n_held_out_tokens, r.predicted, r.measured, o.fast ? kNaN : r.measured / r.predicted);
  } else {
    r.warnings.push_back("no held-out sequences (the mix is too small for this --seq-len): additivity not checked");
  }
  r.seconds["held-out check"] = seconds_since(t0);

  if (o.baselines && !held_out.empty()) {
    t0 = Clock::now();
    write_baselines(source, model, held_out,
                    writer_options(importance, mix_path.string(), sequences.size(), o.threads), o.output_dir, r);
    r.seconds["baselines"] = seconds_since(t0);
  }

  write_report_json(o.output_dir / "optiq-report.json", r, o);
  write_model_card(o.output_dir / "README.md", r, o);
  std::printf("wrote %s: %s\n", w.output_path.c_str(), size_text(r.total_bytes).c_str());
  print_timings(r);
  return r;
}

}  // namespace optiq
