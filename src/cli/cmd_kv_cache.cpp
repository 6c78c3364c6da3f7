#include <algorithm>
#include <thread>

#include "cli/commands.h"
#include "cli/kv_cache_options.h"
#include "export/mixed_convert.h"
#include "kv/kv_cache_plan.h"
#include "kv/kv_candidates.h"
#include "util/error.h"
#include "util/list_parse.h"

namespace optiq::cli {
namespace {

}  // namespace

Command register_kv_cache(CLI::App& app) {
  struct Args {
    std::string model, output;
    double target_bits = 4.5;
    std::string candidate_bits = "4,8", kinds = "affine", candidate_types;
    std::string mix = "optiq";
    size_t seq_len = 1024, n_calibration = 6;
    bool no_hadamard = false;
    TurboF16Flags turbo_f16;
    int threads = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "kv-cache",
      "Measure every layer's K and V sensitivity to quantized cache types and choose a per-layer KV config "
      "for an average-bits target");
  sub->add_option("model", args->model, "HF model folder, hub id org/name[@revision], or .gguf")->required();
  sub->add_option("-o,--output", args->output, "output folder (default: <model name>-kv)");
  sub->add_option("--target-bits", args->target_bits, "average bits per cached value over all layers' K and V "
                                                      "(f16 16, q8_0 8.5, q4_0 4.5)")
      ->capture_default_str();
  sub->add_option("--candidate-bits", args->candidate_bits,
                  "candidate bits per kind: affine 16 f16, 8 q8_0, 5 q5_0, 4 q4_0; turbo 4 tq4, 3 tq3, 2 tq2")
      ->capture_default_str();
  sub->add_option("--kinds", args->kinds, "kinds the candidate bits draw from: affine, turbo (comma-separated)")
      ->capture_default_str();
  auto* types = sub->add_option("--candidate-types", args->candidate_types,
                                "explicit candidate KV types, e.g. q8_0,q4_0,q4_1,iq4_nl (instead of bits and kinds)");
  sub->get_option("--candidate-bits")->excludes(types);
  sub->get_option("--kinds")->excludes(types);
  sub->add_option("--calibration-mix", args->mix, "optiq (the shipped mix) or a .jsonl file")->capture_default_str();
  sub->add_option("--seq-len", args->seq_len, "tokens per calibration sequence")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--n-calibration", args->n_calibration, "calibration sequences measured (0: every one not held out)")
      ->capture_default_str();
  sub->add_flag("--no-kv-hadamard", args->no_hadamard, "measure without llama.cpp's Walsh-Hadamard rotation of quantized heads");
  add_turbo_f16_options(sub, args->turbo_f16);
  sub->add_option("-t,--threads", args->threads, "threads (default: all cores)")->check(CLI::NonNegativeNumber);
  return {sub, [args] {
            const ModelSource source = open_model_source(resolve_model_argument(args->model));
            kv::KVCacheOptions o;
            o.candidates = args->candidate_types.empty()
                               ? kv::kv_candidates_from_bits(parse_int_list(args->candidate_bits, "--candidate-bits"),
                                                             split_list(args->kinds, "--kinds"))
                               : kv::parse_kv_candidate_types(args->candidate_types);
            o.target_bits = args->target_bits;
            o.calibration_mix = args->mix;
            o.calibration.seq_len = args->seq_len;
            o.calibration.n_calibration = args->n_calibration;
            o.hadamard = !args->no_hadamard;
            o.turbo_f16 = args->turbo_f16.over({});
            o.threads = args->threads > 0 ? args->threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
            o.output_dir = args->output.empty() ? model_file_stem(source) + "-kv" : args->output;
            if (std::filesystem::exists(o.output_dir) && !std::filesystem::is_directory(o.output_dir))
              throw InputError(o.output_dir.string(), std::nullopt, "is a file; -o names the output folder");
            kv::plan_kv_cache(source, o);
            return 0;
          }};
}

}  // namespace optiq::cli
