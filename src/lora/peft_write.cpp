// write_peft: an Adapter as the PEFT folder read_peft reads back (see peft.h).
#include <nlohmann/json.hpp>

#include <array>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "io/safetensors.h"
#include "lora/peft.h"
#include "model/hf_tensor_names.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace optiq::lora {
namespace {

// The HF modules (after "model.layers.N.") of the projections the engine adapts.
constexpr std::array<std::string_view, 7> kProjections = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

// "blk.N.attn_q.weight" -> "model.layers.N.self_attn.q_proj": the module whose weight the model
// converter maps to `target` (map_hf_tensor_name stays the one table of names), or nullopt.
std::optional<std::string> hf_module(Arch arch, const std::string& target) {
  if (!target.starts_with("blk.")) return std::nullopt;
  int layer = 0;
  const char* begin = target.data() + 4;
  const auto [end, ec] = std::from_chars(begin, target.data() + target.size(), layer);
  if (ec != std::errc() || end == begin) return std::nullopt;
  for (const std::string_view projection : kProjections) {
    const std::string module = "model.layers." + std::to_string(layer) + "." + std::string(projection);
    const auto mapped = map_hf_tensor_name(arch, module + ".weight");
    if (mapped && !mapped->skip && mapped->gguf_name == target) return module;
  }
  return std::nullopt;
}

// One matrix as PEFT holds it.
struct PeftModule {
  const LoraMatrix* matrix = nullptr;  // the adapter's matrix
  std::string module;                  // "model.layers.3.self_attn.q_proj"
  double alpha = 0;                    // scale · r: PEFT's alpha / r gives the scale back exactly
  std::optional<int64_t> rope_heads;   // set for llama's q/k: B's rows go back to HF's order
};

std::vector<PeftModule> peft_modules(const Adapter& adapter, const engine::HParams& hp) {
  const std::string arch(arch_gguf_name(hp.arch));
  if (adapter.architecture != arch)
    throw InputError(adapter.path, std::nullopt,
                     "the adapter was made for a " + adapter.architecture + " model; the base is " + arch);
  if (adapter.matrices.empty()) throw InputError(adapter.path, std::nullopt, "the adapter holds no LoRA matrices");
  std::vector<PeftModule> out;
  std::set<std::string> seen;
  for (const LoraMatrix& m : adapter.matrices) {
    const auto fail = [&](const std::string& why) { throw InputError(adapter.path, std::nullopt, m.target + ": " + why); };
    std::optional<std::string> module = hf_module(hp.arch, m.target);
    if (!module) fail("not a block projection (q/k/v/o, gate/up/down) of a " + arch + " model");
    if (!seen.insert(m.target).second) fail("adapted twice");
    if (m.rank <= 0 || m.n_in <= 0 || m.n_out <= 0) fail("rank, rows and row length must be positive");
    if (m.a.size() != static_cast<size_t>(m.rank * m.n_in) || m.b_t.size() != static_cast<size_t>(m.rank * m.n_out))
      fail("factor sizes do not match rank " + std::to_string(m.rank));
    if (!std::isfinite(m.scale)) fail("its scale is not finite");
    const std::optional<int64_t> heads = rope_permuted_heads(hp, m.target);
    if (heads && (*heads <= 0 || m.n_out % (2 * *heads) != 0)) fail("its rows are not a multiple of 2 × heads");
    // A float times an integer below 2^29 is exact in a double, and so is the division back.
    out.push_back({&m, std::move(*module), static_cast<double>(m.scale) * static_cast<double>(m.rank), heads});
  }
  return out;
}

nlohmann::ordered_json peft_config(const std::vector<PeftModule>& modules, const PeftWriteOptions& opts) {
  std::set<std::string> targets;  // "q_proj", sorted
  nlohmann::ordered_json rank_pattern = nlohmann::ordered_json::object(), alpha_pattern = nlohmann::ordered_json::object();
  for (const PeftModule& p : modules) {
    targets.insert(p.module.substr(p.module.rfind('.') + 1));
    if (p.matrix->rank != opts.base_rank) rank_pattern[p.module] = p.matrix->rank;
    if (p.alpha != opts.alpha) alpha_pattern[p.module] = p.alpha;
  }
  nlohmann::ordered_json j;
  j["peft_type"] = "LORA";
  j["task_type"] = "CAUSAL_LM";
  j["base_model_name_or_path"] = opts.base_model;
  j["r"] = opts.base_rank;
  j["lora_alpha"] = opts.alpha;
  j["target_modules"] = targets;
  j["rank_pattern"] = rank_pattern;
  j["alpha_pattern"] = alpha_pattern;
  j["lora_dropout"] = 0.0;
  j["bias"] = "none";
  j["fan_in_fan_out"] = false;
  j["use_rslora"] = false;
  j["inference_mode"] = true;
  return j;
}

}  // namespace

void write_peft(const Adapter& adapter, const engine::HParams& hp, const PeftWriteOptions& opts,
                const std::filesystem::path& dir) {
  if (opts.base_rank <= 0) throw std::invalid_argument("write_peft: the base rank must be positive");
  if (!std::isfinite(opts.alpha)) throw std::invalid_argument("write_peft: lora_alpha must be finite");
  const std::vector<PeftModule> modules = peft_modules(adapter, hp);
  std::vector<SafetensorsDecl> decls;
  for (const PeftModule& p : modules) {
    const auto r = static_cast<uint64_t>(p.matrix->rank);
    const std::string name = "base_model.model." + p.module;
    decls.push_back({name + ".lora_A.weight", SafetensorsDtype::F32, {r, static_cast<uint64_t>(p.matrix->n_in)}});
    decls.push_back({name + ".lora_B.weight", SafetensorsDtype::F32, {static_cast<uint64_t>(p.matrix->n_out), r}});
  }
  const std::filesystem::path config_path = dir / "adapter_config.json";
  std::filesystem::create_directories(dir);
  std::filesystem::remove(config_path);  // until the new one is written, the folder is no adapter
  write_safetensors((dir / "adapter_model.safetensors").string(), {{"format", "pt"}}, decls,
                    [&](size_t i, const SafetensorsWriteFn& write) {
                      const PeftModule& p = modules[i / 2];
                      const LoraMatrix& m = *p.matrix;
                      if (i % 2 == 0) return write(m.a.data(), m.a.size() * sizeof(float));
                      std::vector<float> b = transposed(m.b_t, m.rank, m.n_out);  // [n_out, rank]
                      if (p.rope_heads) b = permute_rope_rows(b, m.n_out, m.rank, *p.rope_heads, /*to_gguf=*/false);
                      write(b.data(), b.size() * sizeof(float));
                    });
  write_file_atomically(config_path, peft_config(modules, opts).dump(2) + "\n");
}

}  // namespace optiq::lora
