#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "io/ggml_type_label.h"
#include "cli/commands.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "eval/latency_calibrate.h"
#include "eval/latency_model.h"
#include "export/quantize_model.h"
#include "sensitivity/candidates.h"
#include "util/error.h"
#include "util/list_parse.h"

namespace optiq::cli {
namespace {

// The tensor types an optiq-report.json chose.
eval::WeightTypes plan_types(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, std::nullopt, "cannot be opened");
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("tensors") || !j["tensors"].is_array())
    throw InputError(path, std::nullopt, "is not an optiq-report.json (no \"tensors\" array)");
  eval::WeightTypes types;
  for (const auto& t : j["tensors"]) {
    if (!t.contains("name") || !t["name"].is_string() || !t.contains("chosen") || !t["chosen"].is_string())
      throw InputError(path, std::nullopt, "a tensor entry has no \"name\" or \"chosen\"");
    const auto type = ggml_type_from_name(t["chosen"].get<std::string>());
    if (!type) throw InputError(path, std::nullopt, "tensor " + t["name"].get<std::string>() + " has an unknown type");
    types[t["name"].get<std::string>()] = *type;
  }
  return types;
}

struct Allocation {
  std::string label;
  eval::WeightTypes types;  // empty: the model as stored
};

}  // namespace

Command register_latency(CLI::App& app) {
  struct Args {
    std::string model, cache, mixes, uniform;
    std::vector<std::string> plans;
    bool calibrate = false, measure = false;
    std::string types = "F32,F16,Q8_0,Q6_K,Q5_K,Q5_1,Q5_0,Q4_K,Q4_1,Q4_0,IQ4_NL,Q3_K,Q2_K";
    int random_mixes = 4;
    int64_t n_gen = 64;
    int repetitions = 3;
    int threads = 1;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "latency", "Decode latency model for this CPU: calibrate it from measured runs, predict tokens/s of any allocation");
  sub->add_option("model", args->model, "the model (.gguf, HF folder or hub id); without --plan/--mix/--uniform its stored types are predicted")
      ->required();
  sub->add_flag("--calibrate", args->calibrate, "time decode runs of this model re-stored as each of --types and a few random mixes, fit, save");
  sub->add_option("--plan", args->plans, "an optiq-report.json whose chosen types to predict (repeatable)");
  sub->add_option("--mix", args->mixes, "llama.cpp mixes to predict, e.g. Q4_K_M,Q8_0");
  sub->add_option("--uniform", args->uniform, "uniform types to predict, e.g. Q4_K,Q8_0");
  sub->add_flag("--measure", args->measure, "also measure each allocation's decode speed (weights re-stored in memory) and print the error");
  sub->add_option("--types", args->types, "calibration types")->capture_default_str();
  sub->add_option("--random-mixes", args->random_mixes, "calibration runs with random per-tensor types")->capture_default_str();
  sub->add_option("-n,--n-gen", args->n_gen, "tokens per timed decode, from an empty context")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("-r,--repetitions", args->repetitions, "timed runs per allocation (median)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("-t,--threads", args->threads, "threads (the calibration is per thread count)")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--cache", args->cache, "calibration file (default: $OPTIQ_CACHE_DIR, $XDG_CACHE_HOME/optiq or ~/.cache/optiq, latency.json)");
  return {sub, [args] {
            engine::set_num_threads(args->threads);
            const std::string path = resolve_model_argument(args->model);
            const ModelSource source = open_model_source(path);
            const engine::Model model = engine::load_model(source);
            const eval::LatencyKey key{eval::cpu_model_name(), args->threads, eval::model_shape(model.hp), args->n_gen};
            const bool cpu_time = args->threads == 1;  // see eval::measure_decode_seconds
            const std::filesystem::path cache = args->cache.empty() ? eval::default_latency_cache() : std::filesystem::path(args->cache);
            std::printf("latency model: %s (timed in %s)\n", key.text().c_str(), cpu_time ? "CPU time" : "wall time");

            eval::LatencyFit fit;
            if (args->calibrate) {
              eval::CalibrationOptions o;
              o.types = sensitivity::parse_candidate_types(args->types, "--types");
              o.n_random_mixes = args->random_mixes;
              o.n_gen = args->n_gen;
              o.repetitions = args->repetitions;
              o.cpu_time = cpu_time;
              std::fprintf(stderr, "calibrating: %zu uniform runs and %d random mixes of %lld tokens x %d\n", o.types.size(),
                           o.n_random_mixes, static_cast<long long>(o.n_gen), o.repetitions);
              const eval::Calibration c = eval::calibrate_latency(model, o, [](const eval::CalibrationRecord& r) {
                std::fprintf(stderr, "  %-16s %9.3f ms/token\n", r.label.c_str(), 1e3 * r.seconds);
              });
              fit = c.fit;
              std::printf("%-16s %12s %12s %12s %8s\n", "calibration run", "MB/token", "measured t/s", "fitted t/s", "error");
              for (const auto& r : c.runs) {
                double mb = 0;
                for (const auto& [t, b] : r.bytes) mb += b / 1e6;
                const double predicted = fit.predict_seconds(r.bytes);
                std::printf("%-16s %12.3f %12.2f %12.2f %7.2f%%\n", r.label.c_str(), mb, 1 / r.seconds, 1 / predicted,
                            100 * (r.seconds / predicted - 1));
              }
              eval::save_latency_fit(cache, key, fit, c.runs);
              std::printf("saved to %s\n", cache.string().c_str());
            } else {
              const auto loaded = eval::load_latency_fit(cache, key);
              if (!loaded)
                throw InputError(cache.string(), std::nullopt,
                                 "has no calibration for " + key.text() + ": run `optiq latency " + args->model +
                                     " --calibrate -t " + std::to_string(args->threads) + " -n " + std::to_string(args->n_gen) + "` first");
              fit = *loaded;
            }
            std::printf("fit: overhead %.4f ms/token;", 1e3 * fit.overhead_seconds);
            for (const auto& [t, a] : fit.seconds_per_byte) std::printf(" %s %.4f ns/byte;", ggml_type_label(t).c_str(), 1e9 * a);
            std::printf("\n");

            std::vector<Allocation> allocations;
            for (const auto& p : args->plans) {
              const std::filesystem::path path(p);
              const std::string name = path.filename() == "optiq-report.json" && path.has_parent_path()
                                           ? path.parent_path().filename().string() : path.filename().string();
              allocations.push_back({"plan " + name, plan_types(p)});
            }
            for (const auto& name : args->mixes.empty() ? std::vector<std::string>{} : split_list(args->mixes, "--mix")) {
              const auto mix = quant_mix_from_name(name);
              if (!mix) throw InputError("--mix", std::nullopt, "'" + name + "' is not a mix (" + supported_quant_mixes() + ")");
              QuantizeOptions q;
              q.recipe.mix = *mix;
              Allocation a{std::string(quant_mix_name(*mix)), {}};
              for (const auto& t : plan_quantization(source, q).tensors) a.types[t.source->name] = t.to;
              allocations.push_back(std::move(a));
            }
            for (GgmlType t : args->uniform.empty() ? std::vector<GgmlType>{} : sensitivity::parse_candidate_types(args->uniform, "--uniform"))
              allocations.push_back({"uniform " + ggml_type_label(t), eval::uniform_weight_types(model, t)});
            if (allocations.empty()) allocations.push_back({"as stored", {}});

            std::printf("%-40s %10s %14s%s\n", "allocation", "MB/token", "predicted t/s", args->measure ? "   measured t/s    error" : "");
            double abs_error_sum = 0;
            for (const auto& a : allocations) {
              const eval::TypeBytes bytes = eval::decode_bytes(model, a.types);
              double mb = 0;
              for (const auto& [t, b] : bytes) mb += b / 1e6;
              const double predicted = fit.predict_seconds(bytes);
              std::printf("%-40s %10.3f %14.2f", a.label.c_str(), mb, 1 / predicted);
              if (args->measure) {
                const engine::Model m = eval::retyped_model(model, a.types);
                const double measured = eval::measure_decode_seconds(m, args->n_gen, args->repetitions, cpu_time);
                const double error = (1 / predicted) / (1 / measured) - 1;
                abs_error_sum += std::abs(error);
                std::printf(" %14.2f %+8.2f%%", 1 / measured, 100 * error);
              }
              std::printf("\n");
              std::fflush(stdout);
            }
            if (args->measure)
              std::printf("mean |error| of predicted tokens/s: %.2f%% over %zu allocations\n",
                          100 * abs_error_sum / static_cast<double>(allocations.size()), allocations.size());
            return 0;
          }};
}

}  // namespace optiq::cli
