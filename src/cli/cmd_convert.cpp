#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "export/convert.h"
#include "export/mixed_convert.h"
#include "io/hub.h"
#include "util/error.h"
#include "util/list_parse.h"

namespace optiq::cli {

Command register_convert(CLI::App& app) {
  struct Args {
    std::string model, output, outtype;
    std::string mix = "optiq";
    size_t n_calibration = 6, seq_len = 64, n_held_out = 6;
    std::string candidate_bits = "4,8", candidate_types;
    double target_bpw = 0;
    std::string target_size;
    std::vector<std::string> protect;
    std::string sensitivity = "exact", reference = "source";
    bool dry_run = false, baselines = false, no_keep_stored = false;
    int threads = 0;
    double target_tps = 0;
    int tps_threads = 0;
    std::string latency_cache;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "convert",
      "Make a mixed-precision GGUF whose per-tensor types are chosen by measured KL divergence "
      "(or, with --outtype, convert losslessly to f32/f16/bf16)");
  sub->add_option("model", args->model, "HF model folder, hub id org/name[@revision], or .gguf")->required();
  sub->add_option("-o,--output", args->output,
                  "output folder (default: <model name>-optiq); with --outtype, the output .gguf file");
  sub->add_option("--outtype", args->outtype, "lossless conversion to f32, f16 or bf16 (1-D tensors and norms stay f32)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}, CLI::ignore_case));
  sub->add_option("--calibration-mix", args->mix, "optiq (the shipped mix) or a .jsonl file")->capture_default_str();
  sub->add_option("--n-calibration", args->n_calibration, "calibration sequences measured (0: every one not held out)")
      ->capture_default_str();
  sub->add_option("--seq-len", args->seq_len, "tokens per calibration sequence")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--n-held-out", args->n_held_out, "held-out sequences for the additivity check")->capture_default_str();
  sub->add_option("--candidate-bits", args->candidate_bits,
                  "candidate bits: 2 Q2_K, 3 Q3_K, 4 Q4_K, 5 Q5_K, 6 Q6_K, 8 Q8_0, 16 F16")
      ->capture_default_str();
  sub->add_option("--candidate-types", args->candidate_types, "explicit candidate types, e.g. Q3_K,Q4_K,Q5_K,Q6_K,Q8_0");
  sub->add_flag("--no-keep-stored", args->no_keep_stored,
                "offer only the requested types, not also each quantized source tensor's own type (which keeps its bytes)");
  auto* bpw = sub->add_option("--target-bpw", args->target_bpw, "budget in bits per weight over the whole file")
                  ->check(CLI::PositiveNumber);
  sub->add_option("--target-size", args->target_size, "budget: a size (300MB, 1.2GiB) or a llama.cpp mix name (default Q4_K_M)")
      ->excludes(bpw);
  sub->add_option("--target-tps", args->target_tps,
                  "predicted decode tokens/s to reach (optiq latency's model; with a size target both are met)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--tps-threads", args->tps_threads, "thread count of the latency calibration --target-tps uses (default: -t)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--latency-cache", args->latency_cache, "latency calibration file (default: optiq latency's)");
  sub->add_option("--protect", args->protect, "REGEX=MIN_TYPE: matching tensors get at least MIN_TYPE (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--sensitivity", args->sensitivity, "exact (measured KL) or fast (imatrix proxy)")
      ->check(CLI::IsMember({"exact", "fast"}))
      ->capture_default_str();
  sub->add_option("--reference", args->reference, "source (exact) or q8_0 (the model runs as Q8_0 while measuring)")
      ->check(CLI::IsMember({"source", "q8_0"}))
      ->capture_default_str();
  sub->add_flag("--dry-run", args->dry_run, "measure and print the plan and sizes; write nothing");
  sub->add_flag("--baselines", args->baselines,
                "also write and measure the llama.cpp mix and the uniform type nearest in size");
  sub->add_option("-t,--threads", args->threads, "threads (default: all cores)")->check(CLI::NonNegativeNumber);
  return {sub, [args] {
            ModelSource source = open_model_source(resolve_model_argument(args->model));
            // A hub snapshot folder is named by commit; the repo name is the better model name.
            if (auto id = hub::parse_hub_id(args->model); id && source.kind == SourceKind::HuggingFace)
              source.metadata.set("general.name", GgufValue::string(id->repo.substr(id->repo.find('/') + 1)));
            const int threads = args->threads > 0 ? args->threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

            if (!args->outtype.empty()) {
              if (args->output.empty()) throw InputError("-o", std::nullopt, "--outtype needs the output .gguf path");
              ConvertOptions options;
              options.outtype = *ggml_type_from_name(args->outtype);
              options.output_path = args->output;
              const ConvertReport r = convert_model(source, options);
              std::printf("wrote %s: %zu tensors, %llu parameters, %.2f MB (%.2f bpw) in %.2f s\n",
                          args->output.c_str(), r.n_tensors, static_cast<unsigned long long>(r.n_params),
                          r.bytes_written / 1e6,
                          r.n_params ? 8.0 * static_cast<double>(r.tensor_bytes) / r.n_params : 0.0, r.seconds);
              return 0;
            }

            MixedConvertOptions o;
            o.calibration_mix = args->mix;
            o.calibration.seq_len = args->seq_len;
            o.calibration.n_calibration = args->n_calibration;
            o.n_held_out = args->n_held_out;
            if (!args->candidate_types.empty()) {
              o.candidates = sensitivity::parse_candidate_types(args->candidate_types, "--candidate-types");
              o.candidates_label = args->candidate_types;
            } else {
              o.candidates = sensitivity::candidate_types_from_bits(parse_int_list(args->candidate_bits, "--candidate-bits"), "--candidate-bits");
              o.candidates_label = "bits " + args->candidate_bits;
            }
            if (args->target_bpw > 0) o.target_bpw = args->target_bpw;
            if (!args->target_size.empty()) o.target_size = args->target_size;
            if (args->target_tps > 0) {
              o.target_tps = args->target_tps;
              o.size_budget = args->target_bpw > 0 || !args->target_size.empty();
              o.tps_threads = args->tps_threads;
              o.latency_cache = args->latency_cache;
            }
            for (const auto& p : args->protect) o.protect.push_back(sensitivity::parse_protect_rule(p));
            o.fast = args->sensitivity == "fast";
            o.reference_q8_0 = args->reference == "q8_0";
            o.keep_stored = !args->no_keep_stored;
            o.dry_run = args->dry_run;
            o.baselines = args->baselines;
            o.threads = threads;
            o.output_dir = args->output.empty() ? model_file_stem(source) + "-optiq" : args->output;
            if (std::filesystem::exists(o.output_dir) && !std::filesystem::is_directory(o.output_dir))
              throw InputError(o.output_dir.string(), std::nullopt, "is a file; -o names the output folder (or use --outtype for a single file)");
            mixed_convert(source, o);
            return 0;
          }};
}

}  // namespace optiq::cli
