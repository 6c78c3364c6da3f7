#include "lora/peft.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <regex>

#include "io/safetensors.h"
#include "model/hf_tensor_names.h"
#include "quant/float16.h"
#include "util/error.h"

namespace optiq::lora {
namespace {

using Json = nlohmann::ordered_json;  // key order kept: the first matching pattern wins, as in PEFT

struct PeftConfig {
  int64_t r = 0;
  double alpha = 0;
  bool rslora = false;
  Json rank_pattern = Json::object();   // module-name pattern -> r
  Json alpha_pattern = Json::object();  // module-name pattern -> alpha
};

PeftConfig read_config(const std::filesystem::path& file) {
  const std::string label = file.string();
  std::ifstream in(file);
  if (!in) throw InputError(label, std::nullopt, "cannot open the adapter config");
  Json j;
  try {
    j = Json::parse(in);
  } catch (const Json::parse_error& e) {
    throw InputError(label, e.byte, "not valid JSON");
  }
  const auto fail = [&](const std::string& field, const std::string& why) {
    throw InputError(label, std::nullopt, "field " + field + ": " + why);
  };
  if (!j.is_object()) throw InputError(label, std::nullopt, "not a JSON object");
  if (j.contains("peft_type") && j["peft_type"] != "LORA")
    fail("peft_type", "\"" + j["peft_type"].dump() + "\"; only LoRA adapters are supported");
  if (j.value("use_dora", false)) fail("use_dora", "DoRA adapters are not supported");
  PeftConfig c;
  if (!j.contains("r") || !j["r"].is_number_integer() || j["r"].get<int64_t>() <= 0)
    fail("r", "a positive integer is required");
  c.r = j["r"].get<int64_t>();
  c.alpha = static_cast<double>(c.r);  // PEFT's default lora_alpha is 8 with r 8
  if (j.contains("lora_alpha")) {
    if (!j["lora_alpha"].is_number() || !std::isfinite(j["lora_alpha"].get<double>())) fail("lora_alpha", "not a number");
    c.alpha = j["lora_alpha"].get<double>();
  }
  if (j.contains("use_rslora") && !j["use_rslora"].is_null()) {
    if (!j["use_rslora"].is_boolean()) fail("use_rslora", "not a boolean");
    c.rslora = j["use_rslora"].get<bool>();
  }
  for (const auto& [field, target] : {std::pair{"rank_pattern", &c.rank_pattern}, {"alpha_pattern", &c.alpha_pattern}}) {
    if (!j.contains(field) || j[field].is_null()) continue;
    if (!j[field].is_object()) fail(field, "not an object");
    for (const auto& [key, value] : j[field].items()) {
      const bool ok = field == std::string("rank_pattern") ? value.is_number_integer() && value.get<int64_t>() > 0
                                                          : value.is_number() && std::isfinite(value.get<double>());
      if (!ok) fail(std::string(field) + "." + key, "not a valid value");
      try {
        static_cast<void>(std::regex(key));
      } catch (const std::regex_error&) {
        fail(std::string(field) + "." + key, "not a valid regular expression");
      }
    }
    *target = j[field];
  }
  return c;
}

// The value of the first pattern key that names `module` (PEFT: the key matches the whole
// name or a suffix after a '.'), or nullopt.
std::optional<Json> pattern_value(const Json& patterns, const std::string& module) {
  for (const auto& [key, value] : patterns.items())
    if (std::regex_match(module, std::regex("(.*\\.)?(" + key + ")"))) return value;
  return std::nullopt;
}

std::vector<float> tensor_f32(const SafetensorsFile& file, const SafetensorsTensor& t) {
  const std::span<const std::byte> bytes = file.data(t);
  std::vector<float> out(t.n_elements());
  switch (t.dtype) {
    case SafetensorsDtype::F32: std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float)); break;
    case SafetensorsDtype::F16: f16_to_f32_n(reinterpret_cast<const uint16_t*>(bytes.data()), out.data(), out.size()); break;
    case SafetensorsDtype::BF16: bf16_to_f32_n(reinterpret_cast<const uint16_t*>(bytes.data()), out.data(), out.size()); break;
    default:
      throw InputError(file.path(), std::nullopt,
                       "tensor " + t.name + " is " + safetensors_dtype_name(t.dtype) + "; LoRA factors must be F32, F16 or BF16");
  }
  return out;
}

struct Factors {
  const SafetensorsTensor* a = nullptr;
  const SafetensorsTensor* b = nullptr;
};

// "base_model.model.<module>.lora_A[.<adapter name>].weight" -> module and which factor.
std::optional<std::pair<std::string, char>> split_name(const std::string& name) {
  static const std::regex pattern(R"(base_model\.model\.(.+)\.lora_([AB])(\.[A-Za-z0-9_-]+)?\.weight)");
  std::smatch m;
  if (!std::regex_match(name, m, pattern)) return std::nullopt;
  return std::pair{m[1].str(), m[2].str()[0]};
}

}  // namespace

Adapter read_peft(const std::filesystem::path& path, const engine::HParams& hp) {
  const std::filesystem::path dir = path.extension() == ".json" ? path.parent_path() : path;
  const std::filesystem::path config_file = path.extension() == ".json" ? path : dir / "adapter_config.json";
  const PeftConfig config = read_config(config_file);
  const std::filesystem::path weights = dir / "adapter_model.safetensors";
  std::error_code ec;
  if (!std::filesystem::exists(weights, ec)) {
    const bool bin = std::filesystem::exists(dir / "adapter_model.bin", ec);
    throw InputError(weights.string(), std::nullopt,
                     bin ? "missing; adapter_model.bin (pickle) is not read: save the adapter with safe_serialization"
                         : "missing");
  }
  const SafetensorsFile file(weights.string());
  std::map<std::string, Factors> modules;
  for (const SafetensorsTensor& t : file.contents().tensors) {
    const auto parts = split_name(t.name);
    if (!parts)
      throw InputError(file.path(), std::nullopt,
                       "tensor " + t.name + " is not a LoRA factor (base_model.model.<module>.lora_A/lora_B.weight)");
    Factors& f = modules[parts->first];
    (parts->second == 'A' ? f.a : f.b) = &t;
  }
  Adapter adapter;
  adapter.path = dir.string();
  adapter.architecture = std::string(arch_gguf_name(hp.arch));
  for (const auto& [module, f] : modules) {
    const auto fail = [&](const std::string& why) { throw InputError(file.path(), std::nullopt, module + ": " + why); };
    if (!f.a || !f.b) fail(std::string(f.a ? "lora_B" : "lora_A") + " is missing");
    const auto mapped = map_hf_tensor_name(hp.arch, module + ".weight");
    if (!mapped || mapped->skip || mapped->layer < 0)  // load_adapter checks the rest against the base
      fail("not a module the engine can adapt (q/k/v/o and gate/up/down projections of the blocks)");
    if (f.a->shape.size() != 2 || f.b->shape.size() != 2 || f.a->shape[0] != f.b->shape[1])
      fail("lora_A and lora_B are not (r, in) and (out, r)");
    LoraMatrix m;
    m.target = mapped->gguf_name;
    m.rank = static_cast<int64_t>(f.a->shape[0]);
    m.n_in = static_cast<int64_t>(f.a->shape[1]);
    m.n_out = static_cast<int64_t>(f.b->shape[0]);
    const std::optional<Json> r_pattern = pattern_value(config.rank_pattern, module);
    const int64_t r = r_pattern ? r_pattern->get<int64_t>() : config.r;
    if (m.rank != r)
      fail("rank " + std::to_string(m.rank) + " in the file, " + std::to_string(r) + " in the config" +
           (r_pattern ? " (rank_pattern)" : ""));
    const std::optional<Json> a_pattern = pattern_value(config.alpha_pattern, module);
    const double alpha = a_pattern ? a_pattern->get<double>() : config.alpha;
    m.scale = static_cast<float>(config.rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r));
    m.a = tensor_f32(file, *f.a);
    std::vector<float> b = tensor_f32(file, *f.b);  // [n_out, rank]
    if (const std::optional<int64_t> heads = rope_permuted_heads(hp, m.target)) {
      if (*heads <= 0 || m.n_out % (2 * *heads) != 0) fail("its rows are not a multiple of 2 × heads");
      b = permute_rope_rows(b, m.n_out, m.rank, *heads, /*to_gguf=*/true);
    }
    m.b_t = transposed(b, m.n_out, m.rank);
    adapter.matrices.push_back(std::move(m));
  }
  return adapter;
}

std::optional<int64_t> rope_permuted_heads(const engine::HParams& hp, std::string_view gguf_name) {
  if (hp.arch != Arch::Llama) return std::nullopt;
  if (gguf_name.ends_with("attn_q.weight")) return hp.n_head;
  if (gguf_name.ends_with("attn_k.weight")) return hp.n_head_kv;
  return std::nullopt;
}

std::vector<float> permute_rope_rows(const std::vector<float>& b, int64_t n_out, int64_t r, int64_t heads, bool to_gguf) {
  const int64_t d = n_out / heads, half = d / 2;
  std::vector<float> out(b.size());
  for (int64_t hf_row = 0; hf_row < n_out; ++hf_row) {
    const int64_t h = hf_row / d, j = (hf_row % d) / half, i = hf_row % half;
    const int64_t gguf_row = h * d + 2 * i + j;
    const int64_t from = to_gguf ? hf_row : gguf_row, to = to_gguf ? gguf_row : hf_row;
    std::copy_n(b.data() + from * r, r, out.data() + to * r);
  }
  return out;
}

}  // namespace optiq::lora
