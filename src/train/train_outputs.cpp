#include "train/train_outputs.h"

#include "lora/gguf_lora.h"
#include "lora/peft.h"
#include "model/arch.h"
#include "util/atomic_file.h"

namespace optiq::train {

lora::Adapter to_adapter(const TrainableAdapter<float>& factors, const engine::Model& model) {
  lora::Adapter adapter;
  adapter.path = "(trained)";
  adapter.architecture = std::string(arch_gguf_name(model.hp.arch));
  for (const LoraFactors<float>& f : factors) {
    lora::LoraMatrix m;
    m.target = f.target->name;
    m.rank = f.shape.rank, m.n_in = f.shape.n_in, m.n_out = f.shape.n_out;
    m.a = f.a;
    m.b_t = lora::transposed(f.b, f.shape.n_out, f.shape.rank);
    m.scale = f.shape.scale;
    adapter.matrices.push_back(std::move(m));
  }
  return adapter;
}

void write_train_outputs(const std::filesystem::path& dir, const TrainableAdapter<float>& factors,
                         const engine::Model& model, const std::string& base_model, int64_t base_rank, double alpha,
                         const nlohmann::json& config) {
  std::filesystem::create_directories(dir);
  const lora::Adapter adapter = to_adapter(factors, model);
  lora::write_peft(adapter, model.hp, {base_model, base_rank, alpha}, dir);
  lora::write_gguf_lora(adapter, dir / kGgufAdapterFile);
  write_file_atomically(dir / kTrainConfigFile, config.dump(2) + "\n");
}

}  // namespace optiq::train
