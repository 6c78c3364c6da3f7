#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "export/mixed_convert.h"
#include "export/pareto.h"
#include "sensitivity/candidates.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/list_parse.h"

namespace optiq::cli {
namespace {

std::vector<double> parse_bpw_list(const std::string& list) {
  std::vector<double> out = parse_double_list(list, "--bpw");
  for (double v : out)
    if (!(v > 0) || v > 32)
      throw InputError("--bpw", std::nullopt, std::to_string(v) + " is not a number of bits per weight (0 < bpw <= 32)");
  return out;
}

}  // namespace

Command register_pareto(CLI::App& app) {
  struct Args {
    std::string model, output, sensitivity_from, text, candidate_types;
    std::string bpw = "3,3.5,4,4.5,5,6,8";
    std::string recipes = "Q3_K_M,Q4_K_M,Q5_K_M,Q6_K,Q8_0";
    std::string uniform = "Q3_K,Q4_K,Q5_K,Q6_K";
    int64_t n_ctx = 512, n_chunks = 8;
    int threads = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "pareto", "Size against quality: optiq allocations at several bpw (from a convert run's measurements), "
                "llama.cpp recipes and uniform types, each measured (KLD, PPL) on a held-out text");
  sub->add_option("model", args->model, "the model optiq convert measured (.gguf, HF folder or hub id)")->required();
  sub->add_option("-o,--output", args->output, "output folder (default: <model name>-pareto)");
  sub->add_option("--bpw", args->bpw, "bits-per-weight targets of optiq's sweep")->capture_default_str();
  sub->add_option("--sensitivity-from", args->sensitivity_from,
                  "the optiq convert folder whose sensitivity.jsonl and imatrix.gguf are reused (default: <model name>-optiq)");
  sub->add_option("--candidate-types", args->candidate_types, "candidate types (default: the convert run's)");
  sub->add_option("--recipes", args->recipes, "llama.cpp mixes to compare with (\"\" for none)")->capture_default_str();
  sub->add_option("--uniform", args->uniform, "uniform types to compare with (\"\" for none)")->capture_default_str();
  sub->add_option("--text", args->text, "held-out text (default: bench/convert_results.py's, from ../shared/data)");
  sub->add_option("-c,--ctx-size", args->n_ctx, "tokens per evaluation chunk")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--chunks", args->n_chunks, "chunks evaluated")->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("-t,--threads", args->threads, "threads (default: all cores)")->check(CLI::NonNegativeNumber);
  return {sub, [args] {
            const ModelSource source = open_model_source(resolve_model_argument(args->model));
            ParetoOptions o;
            o.bpw = parse_bpw_list(args->bpw);
            o.convert_dir = args->sensitivity_from.empty() ? model_file_stem(source) + "-optiq" : args->sensitivity_from;
            o.output_dir = args->output.empty() ? model_file_stem(source) + "-pareto" : args->output;
            if (!args->candidate_types.empty())
              o.candidates = sensitivity::parse_candidate_types(args->candidate_types, "--candidate-types");
            for (const auto& name : args->recipes.empty() ? std::vector<std::string>{} : split_list(args->recipes, "--recipes")) {
              const auto mix = quant_mix_from_name(name);
              if (!mix) throw InputError("--recipes", std::nullopt, "'" + name + "' is not a mix (" + supported_quant_mixes() + ")");
              o.recipes.push_back(*mix);
            }
            if (!args->uniform.empty()) o.uniform = sensitivity::parse_candidate_types(args->uniform, "--uniform");
            o.text = args->text;
            o.n_ctx = args->n_ctx;
            o.n_chunks = args->n_chunks;
            o.threads = args->threads > 0 ? args->threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
            if (std::filesystem::exists(o.output_dir) && !std::filesystem::is_directory(o.output_dir))
              throw InputError(o.output_dir.string(), std::nullopt, "is a file; -o names the output folder");
            const ParetoResult r = run_pareto(source, o);
            print_pareto_table(stdout, r);
            write_pareto_json(o.output_dir / "pareto.json", r);
            write_pareto_markdown(o.output_dir / "pareto.md", r);
            write_file_atomically(o.output_dir / "pareto.svg", pareto_svg(r));
            std::printf("wrote %s/pareto.{json,md,svg}\n", o.output_dir.string().c_str());
            return 0;
          }};
}

}  // namespace optiq::cli
