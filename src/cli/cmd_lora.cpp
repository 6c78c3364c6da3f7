// optiq lora convert ADAPTER --base MODEL -o adapter.gguf
// optiq lora merge MODEL ADAPTER[:SCALE]... -o OUT.gguf [--type T]
// optiq lora train / info (cmd_lora_train.cpp)
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "engine/model.h"
#include "lora/adapter.h"
#include "lora/gguf_lora.h"
#include "lora/merge.h"
#include "model/model_source.h"
#include "util/error.h"

namespace optiq::cli {

Command register_lora(CLI::App& app) {
  struct Args {
    std::string adapter, base, out;           // convert
    std::string model, type;                  // merge
    std::vector<std::string> adapters;        // merge: PATH[:SCALE]
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("lora", "LoRA adapters: train, convert to llama.cpp's GGUF-LoRA, merge into a model");
  sub->require_subcommand(1);
  CLI::App* convert = sub->add_subcommand("convert", "Write a PEFT or GGUF-LoRA adapter as a GGUF-LoRA file llama.cpp loads with --lora");
  convert->add_option("adapter", args->adapter, "PEFT folder (adapter_config.json + adapter_model.safetensors) or GGUF-LoRA file")->required();
  convert->add_option("--base", args->base, "the base model it adapts (.gguf, HF folder or hub id): names, shapes and rotary order are checked against it")->required();
  convert->add_option("-o,--output", args->out, "output .gguf")->required();
  CLI::App* merge = sub->add_subcommand("merge", "Fold adapters into a model's weights and write the merged GGUF");
  merge->add_option("model", args->model, "the base model (.gguf)")->required();
  merge->add_option("adapters", args->adapters, "adapters PATH[:SCALE], applied together")->required();
  merge->add_option("-o,--output", args->out, "output .gguf")->required();
  merge->add_option("--type", args->type, "write every merged tensor as this type (default: each keeps its stored type)");
  const Command train = add_lora_train(*sub), info = add_lora_info(*sub);
  return {sub, [args, convert, train, info] {
            if (train.subcommand->parsed()) return train.run();
            if (info.subcommand->parsed()) return info.run();
            if (convert->parsed()) {
              const engine::Model base = engine::load_model(open_model_source(resolve_model_argument(args->base)));
              const lora::Adapter adapter = lora::load_adapter(args->adapter, base);
              lora::write_gguf_lora(adapter, args->out);
              std::fprintf(stderr, "wrote %s: %zu adapted weights, %.2f MiB\n", args->out.c_str(), adapter.matrices.size(),
                           static_cast<double>(adapter.bytes()) / (1 << 20));
              return 0;
            }
            const std::string path = resolve_model_argument(args->model);
            const ModelSource source = open_model_source(path);
            const engine::Model base = engine::load_model(source);
            std::vector<lora::Adapter> loaded;
            std::vector<float> scales;
            for (const std::string& spec : args->adapters) {
              const lora::AdapterSpec s = lora::parse_adapter_spec(spec);
              loaded.push_back(lora::load_adapter(s.path, base));
              scales.push_back(s.scale);
            }
            std::vector<lora::ScaledAdapter> scaled;
            for (size_t i = 0; i < loaded.size(); ++i) scaled.push_back({&loaded[i], scales[i]});
            std::optional<GgmlType> type;
            if (!args->type.empty()) {
              type = ggml_type_from_name(args->type);
              if (!type) throw InputError("--type", std::nullopt, "\"" + args->type + "\" is not a ggml type name");
            }
            lora::merge_adapters(source, scaled, type, args->out);
            std::fprintf(stderr, "wrote %s\n", args->out.c_str());
            return 0;
          }};
}

}  // namespace optiq::cli
