#include <cstdio>
#include <thread>

#include "cli/commands.h"
#include "export/quantize_model.h"
#include "io/hub.h"
#include "io/imatrix_file.h"
#include "util/error.h"
#include "util/progress.h"

namespace optiq::cli {
namespace {

GgmlType parse_type_option(const std::string& value, const char* option) {
  const auto t = ggml_type_from_name(value);
  if (!t) throw InputError(option, std::nullopt, "unknown tensor type '" + value + "'");
  return *t;
}

std::string bracketed_shape(const std::vector<uint64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

double mib(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

void print_plan(const QuantizePlan& plan) {
  const size_t n = plan.tensors.size();
  for (size_t i = 0; i < n; ++i) {
    const PlannedTensor& p = plan.tensors[i];
    std::printf("[%4zu/%4zu] %-40s %-22s %6s -> %-6s %10.3f MiB -> %10.3f MiB%s%s\n", i + 1, n,
                p.source->name.c_str(), bracketed_shape(p.source->shape).c_str(),
                std::string(ggml_type_name(p.from)).c_str(), std::string(ggml_type_name(p.to)).c_str(),
                mib(p.bytes_from), mib(p.bytes_to), p.fell_back ? "  (fallback)" : "",
                p.importance ? "  (imatrix)" : "");
  }
  const double params = static_cast<double>(plan.n_params);
  std::printf("model size  = %10.2f MiB (%.2f BPW)\n", mib(plan.bytes_from), 8.0 * plan.bytes_from / params);
  std::printf("quant size  = %10.2f MiB (%.2f BPW)\n", mib(plan.bytes_to), 8.0 * plan.bytes_to / params);
  if (plan.n_fallback > 0)
    std::printf("warning: %d of %zu tensor(s) required fallback quantization\n", plan.n_fallback, n);
}

}  // namespace

Command register_quantize(CLI::App& app) {
  struct Args {
    std::string model, output, type, imatrix, output_tensor_type, token_embedding_type;
    std::vector<std::string> tensor_types;
    bool pure = false, dry_run = false;
    int threads = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("quantize", "Quantize a model with a llama.cpp mix (Q4_K_M, Q8_0, ...) into a GGUF file");
  sub->add_option("model", args->model, ".gguf file, Hugging Face folder, or hub id org/name[@revision]")->required();
  sub->add_option("-o,--output", args->output, "output .gguf path (not needed with --dry-run)");
  sub->add_option("--type", args->type, "mix: " + supported_quant_mixes() + " (or its llama_ftype number)")->required();
  sub->add_option("--imatrix", args->imatrix, "importance matrix (.gguf or legacy .dat, from optiq imatrix or llama-imatrix)");
  sub->add_option("--tensor-type", args->tensor_types, "REGEX=TYPE: tensors whose name matches REGEX get TYPE (repeatable)")
      ->allow_extra_args(false);
  sub->add_option("--output-tensor-type", args->output_tensor_type, "type for output.weight");
  sub->add_option("--token-embedding-type", args->token_embedding_type, "type for token_embd.weight");
  sub->add_flag("--pure", args->pure, "no per-tensor rules: every quantizable tensor gets the mix's type");
  sub->add_flag("--dry-run", args->dry_run, "print the plan and sizes, write nothing");
  sub->add_option("-t,--threads", args->threads, "threads (default: all cores)")->check(CLI::NonNegativeNumber);
  return {sub, [args] {
            const auto mix = quant_mix_from_name(args->type);
            if (!mix)
              throw InputError("--type", std::nullopt,
                               "unknown mix '" + args->type + "'; optiq knows " + supported_quant_mixes());
            if (!args->dry_run && args->output.empty())
              throw InputError("-o", std::nullopt, "an output path is required (or --dry-run)");
            QuantizeOptions options;
            options.recipe.mix = *mix;
            options.recipe.pure = args->pure;
            for (const auto& spec : args->tensor_types)
              options.recipe.tensor_types.push_back(parse_tensor_type_override(spec));
            if (!args->output_tensor_type.empty())
              options.recipe.output_tensor_type = parse_type_option(args->output_tensor_type, "--output-tensor-type");
            if (!args->token_embedding_type.empty())
              options.recipe.token_embedding_type = parse_type_option(args->token_embedding_type, "--token-embedding-type");
            options.output_path = args->output;
            options.threads = args->threads > 0 ? args->threads : std::max(1u, std::thread::hardware_concurrency());
            if (!args->imatrix.empty()) {
              const Imatrix m = read_imatrix_file(args->imatrix);
              options.imatrix = imatrix_importance(m);
              options.imatrix_path = args->imatrix;
              options.imatrix_datasets = m.datasets;
              options.imatrix_chunks = m.chunk_count;
            }
            const std::string path = resolve_model_argument(args->model);
            ModelSource source = open_model_source(path);
            // A hub snapshot folder is named by commit; the repo name is the better model name.
            if (auto id = hub::parse_hub_id(args->model); id && source.kind == SourceKind::HuggingFace)
              source.metadata.set("general.name", GgufValue::string(id->repo.substr(id->repo.find('/') + 1)));
            const QuantizePlan plan = plan_quantization(source, options);
            std::printf("%s %s as %s (general.file_type %u)%s\n", args->dry_run ? "planning" : "quantizing",
                        path.c_str(), std::string(quant_mix_name(*mix)).c_str(), plan.file_type,
                        options.imatrix.empty() ? "" : ", with an importance matrix");
            print_plan(plan);
            std::fflush(stdout);
            if (args->dry_run) return 0;
            ProgressBar bar("quantize", plan.tensors.size(), 1, "tensors");
            write_quantized(source, plan, options, [&](size_t i) { bar.update(i + 1); });
            bar.finish();
            std::printf("wrote %s in %.2f s (%d threads)\n", args->output.c_str(), bar.elapsed_seconds(), options.threads);
            return 0;
          }};
}

}  // namespace optiq::cli
