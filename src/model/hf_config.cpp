#include "model/hf_config.h"

#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/json_file.h"

namespace optiq {
namespace {

using nlohmann::json;

const json* find_key(const json& j, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    auto it = j.find(n);
    if (it != j.end() && !it->is_null()) return &*it;
  }
  return nullptr;
}

class ConfigReader {
 public:
  ConfigReader(const json& params, std::string path) : p_(params), path_(std::move(path)) {}

  std::optional<int64_t> get_int(std::initializer_list<const char*> names) const {
    const json* v = find_key(p_, names);
    if (!v) return std::nullopt;
    if (!v->is_number_integer()) fail(*names.begin(), "an integer");
    return v->get<int64_t>();
  }
  std::optional<double> get_double(std::initializer_list<const char*> names) const {
    const json* v = find_key(p_, names);
    if (!v) return std::nullopt;
    if (!v->is_number()) fail(*names.begin(), "a number");
    return v->get<double>();
  }
  int64_t require_int(std::initializer_list<const char*> names) const {
    auto v = get_int(names);
    if (!v) fail(*names.begin(), "present");
    return *v;
  }
  [[noreturn]] void fail(const char* key, const char* expected) const {
    throw InputError(path_, std::nullopt, std::string("field '") + key + "' must be " + expected);
  }
  const json& params() const { return p_; }

 private:
  const json& p_;
  std::string path_;
};

void put_u32(GgufMetadata& m, const std::string& key, int64_t v) {
  m.set(key, GgufValue::of<uint32_t>(static_cast<uint32_t>(v)));
}
void put_f32(GgufMetadata& m, const std::string& key, double v) {
  m.set(key, GgufValue::of<float>(static_cast<float>(v)));
}


std::optional<double> local_rope_theta(const json& p) {
  if (auto* r = find_key(p, {"rope_parameters", "rope_scaling"}); r && r->is_object())
    if (auto it = r->find("sliding_attention"); it != r->end() && it->contains("rope_theta"))
      return (*it)["rope_theta"].get<double>();
  if (auto* t = find_key(p, {"rope_local_base_freq", "local_rope_theta", "swa_rope_theta"}))
    return t->get<double>();
  return std::nullopt;
}

void write_rope_scaling(const std::string& a, const json& rope, GgufMetadata& m) {
  auto type = rope.value("rope_type", std::string());
  if (rope.contains("factor") && !rope["factor"].is_null()) {
    const double factor = rope["factor"].get<double>();
    if (type == "linear") {
      m.set(a + ".rope.scaling.type", GgufValue::string("linear"));
      put_f32(m, a + ".rope.scaling.factor", factor);
    } else if (type == "yarn") {
      m.set(a + ".rope.scaling.type", GgufValue::string("yarn"));
      put_f32(m, a + ".rope.scaling.factor", factor);
      if (rope.contains("original_max_position_embeddings"))
        put_u32(m, a + ".rope.scaling.original_context_length",
                rope["original_max_position_embeddings"].get<int64_t>());
    }
  }
  // "llama3" scaling is carried by the rope_freqs tensor (see hf_model.cpp), not by keys.
}

}  // namespace

json hf_rope_parameters(const json& p) {
  json r = json::object();
  if (auto* v = find_key(p, {"rope_parameters", "rope_scaling"}); v && v->is_object()) r = *v;
  if (r.contains("full_attention")) return r["full_attention"];
  if (!r.contains("rope_theta"))
    if (auto* t = find_key(p, {"rope_theta", "rotary_emb_base"})) r["rope_theta"] = *t;
  if (!r.contains("rope_type") && r.contains("type")) r["rope_type"] = r["type"];
  if (!r.contains("original_max_position_embeddings"))
    if (auto* t = find_key(p, {"original_max_position_embeddings"})) r["original_max_position_embeddings"] = *t;
  return r;
}

int64_t HfConfig::n_layers() const { return params.value("num_hidden_layers", int64_t{0}); }
int64_t HfConfig::n_heads() const {
  return params.value("num_attention_heads", int64_t{arch == Arch::Gemma3 ? 8 : 0});
}
int64_t HfConfig::n_kv_heads() const {
  if (auto* v = find_key(params, {"num_key_value_heads"})) return v->get<int64_t>();
  return arch == Arch::Gemma3 ? 4 : n_heads();
}

HfConfig parse_hf_config(const std::string& path) {
  const json j = read_json_file(path);
  if (!j.is_object()) throw InputError(path, std::nullopt, "config.json is not a JSON object");
  auto archs = j.find("architectures");
  if (archs == j.end() || !archs->is_array() || archs->empty() || !(*archs)[0].is_string())
    throw InputError(path, std::nullopt,
                     "field 'architectures' is missing; supported: " + supported_architectures());
  const std::string hf_class = (*archs)[0].get<std::string>();
  auto arch = arch_from_hf_class(hf_class);
  if (!arch)
    throw InputError(path, std::nullopt, "unsupported architecture '" + hf_class +
                                             "'; supported: " + supported_architectures());
  HfConfig c;
  c.arch = *arch;
  c.params = j;
  // Multimodal configs keep the language model's settings under text_config.
  if (auto tc = j.find("text_config"); tc != j.end() && tc->is_object())
    for (auto& [k, v] : tc->items()) c.params[k] = v;
  for (const char* key : {"num_hidden_layers", "hidden_size", "intermediate_size"})
    if (!c.params.contains(key) || !c.params[key].is_number_integer())
      throw InputError(path, std::nullopt, std::string("field '") + key + "' must be an integer");
  if (c.arch != Arch::Gemma3 && !c.params.contains("num_attention_heads"))
    throw InputError(path, std::nullopt, "field 'num_attention_heads' must be an integer");
  return c;
}

void hf_config_to_gguf(const HfConfig& config, const std::string& model_name, GgufMetadata& m) {
  const std::string a(arch_gguf_name(config.arch));
  const json& p = config.params;
  ConfigReader r(p, "config.json");
  const bool gemma = config.arch == Arch::Gemma3;

  m.set("general.architecture", GgufValue::string(a));
  m.set("general.type", GgufValue::string("model"));
  m.set("general.name", GgufValue::string(model_name));

  put_u32(m, a + ".block_count", config.n_layers());
  if (auto v = r.get_int({"max_position_embeddings", "n_ctx", "n_positions"}))
    put_u32(m, a + ".context_length", *v);
  else if (gemma)
    put_u32(m, a + ".context_length", 131072);
  put_u32(m, a + ".embedding_length", r.require_int({"hidden_size"}));
  put_u32(m, a + ".feed_forward_length", r.require_int({"intermediate_size"}));
  put_u32(m, a + ".attention.head_count", config.n_heads());
  if (gemma || p.contains("num_key_value_heads"))
    put_u32(m, a + ".attention.head_count_kv", config.n_kv_heads());

  const json rope = hf_rope_parameters(p);
  write_rope_scaling(a, rope, m);
  if (rope.contains("rope_theta"))
    put_f32(m, a + ".rope.freq_base", rope["rope_theta"].get<double>());
  else if (gemma)
    put_f32(m, a + ".rope.freq_base", 1'000'000.0);
  if (auto local = local_rope_theta(p)) put_f32(m, a + ".rope.freq_base_swa", *local);

  if (auto eps = r.get_double({"rms_norm_eps"}))
    put_f32(m, a + ".attention.layer_norm_rms_epsilon", *eps);
  else if (gemma)
    put_f32(m, a + ".attention.layer_norm_rms_epsilon", 1e-6);

  auto head_dim = r.get_int({"head_dim"});
  if (gemma && !head_dim) head_dim = 256;
  if (head_dim) {
    put_u32(m, a + ".attention.key_length", *head_dim);
    put_u32(m, a + ".attention.value_length", *head_dim);
  }

  if (config.arch == Arch::Llama) {
    if (auto v = r.get_int({"vocab_size"})) put_u32(m, a + ".vocab_size", *v);
    put_u32(m, a + ".rope.dimension_count",
            head_dim ? *head_dim : r.require_int({"hidden_size"}) / config.n_heads());
  }

  if (gemma) {
    if (auto cap = r.get_double({"final_logit_softcapping"}))
      put_f32(m, a + ".final_logit_softcapping", *cap);
    if (p.value("sliding_window_pattern", json()) != json(1))
      if (auto sw = r.get_int({"sliding_window"})) put_u32(m, a + ".attention.sliding_window", *sw);
    // llama.cpp assumes every 6th layer is global; say so explicitly only when the model
    // differs, so files stay loadable by llama.cpp builds that predate the array form.
    std::vector<bool> swa(static_cast<size_t>(config.n_layers()));
    if (auto lt = p.find("layer_types"); lt != p.end() && lt->is_array() && lt->size() == swa.size()) {
      for (size_t i = 0; i < swa.size(); ++i) swa[i] = (*lt)[i] == "sliding_attention";
    } else {
      const int64_t period = p.value("sliding_window_pattern", int64_t{6});
      for (size_t i = 0; i < swa.size(); ++i) swa[i] = period > 0 && (i + 1) % period != 0;
    }
    bool default_pattern = true;
    for (size_t i = 0; i < swa.size(); ++i) default_pattern &= swa[i] == ((i + 1) % 6 != 0);
    if (!default_pattern) {
      std::vector<GgufValue> items;
      for (bool b : swa) items.push_back(GgufValue::of<bool>(b));
      m.set(a + ".attention.sliding_window_pattern", GgufValue::array(GgufValueType::BOOL, std::move(items)));
    }
  }
}

}  // namespace optiq
