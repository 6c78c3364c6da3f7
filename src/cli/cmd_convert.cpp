#include <cstdio>

#include "cli/commands.h"
#include "export/convert.h"
#include "io/hub.h"
#include "util/error.h"

namespace optiq::cli {

Command register_convert(CLI::App& app) {
  struct Args {
    std::string model;
    std::string output;
    std::string outtype = "f16";
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "convert", "Convert a Hugging Face model (folder or hub id) or a GGUF file to a GGUF file");
  sub->add_option("model", args->model, "HF model folder, hub id org/name[@revision], or .gguf")
      ->required();
  sub->add_option("-o,--output", args->output, "output .gguf path")->required();
  sub->add_option("--outtype", args->outtype, "f32, f16 or bf16 (1-D tensors and norms stay f32)")
      ->check(CLI::IsMember({"f32", "f16", "bf16"}, CLI::ignore_case));
  return {sub, [args] {
            ConvertOptions options;
            options.outtype = *ggml_type_from_name(args->outtype);
            options.output_path = args->output;
            ModelSource source = open_model_source(resolve_model_argument(args->model));
            // A hub snapshot folder is named by commit; the repo name is the better model name.
            if (auto id = hub::parse_hub_id(args->model); id && source.kind == SourceKind::HuggingFace)
              source.metadata.set("general.name", GgufValue::string(id->repo.substr(id->repo.find('/') + 1)));
            const ConvertReport r = convert_model(source, options);
            std::printf("wrote %s: %zu tensors, %llu parameters, %.2f MB (%.2f bpw) in %.2f s\n",
                        args->output.c_str(), r.n_tensors,
                        static_cast<unsigned long long>(r.n_params), r.bytes_written / 1e6,
                        r.n_params ? 8.0 * static_cast<double>(r.tensor_bytes) / r.n_params : 0.0,
                        r.seconds);
            return 0;
          }};
}

}  // namespace optiq::cli
