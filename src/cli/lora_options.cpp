#include "cli/lora_options.h"

#include <cstdio>

namespace optiq::cli {

void add_lora_option(CLI::App* sub, std::vector<std::string>& specs) {
  sub->add_option("--lora", specs,
                  "LoRA adapter PATH[:SCALE] (PEFT folder or GGUF-LoRA file), applied unmerged; repeat to stack")
      ->expected(1)
      ->take_all();
}

LoadedAdapters load_adapters(const engine::Model& model, const std::vector<std::string>& specs) {
  LoadedAdapters out;
  std::vector<float> scales;
  for (const std::string& spec : specs) {
    const lora::AdapterSpec s = lora::parse_adapter_spec(spec);
    out.adapters.push_back(lora::load_adapter(s.path, model));
    scales.push_back(s.scale);
    const lora::Adapter& a = out.adapters.back();
    std::fprintf(stderr, "LoRA %s: %zu matrices, scale %g, %.2f MiB\n", a.path.c_str(), a.matrices.size(),
                 static_cast<double>(s.scale), static_cast<double>(a.bytes()) / (1 << 20));
  }
  for (size_t i = 0; i < out.adapters.size(); ++i) {
    const auto d = lora::resolve(out.adapters[i], model, scales[i]);
    out.deltas.insert(out.deltas.end(), d.begin(), d.end());
  }
  return out;
}

}  // namespace optiq::cli
