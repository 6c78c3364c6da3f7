#include "quant/recipe.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>

#include "util/error.h"

namespace optiq {
namespace {

struct MixEntry {
  std::string_view name;
  QuantMix mix;
  GgmlType default_type;
};

// llama-quantize's names; the aliases come first so that a number maps to the canonical name.
constexpr std::array kMixes = {
    MixEntry{"Q4_0", QuantMix::Q4_0, GgmlType::Q4_0},       MixEntry{"Q4_1", QuantMix::Q4_1, GgmlType::Q4_1},
    MixEntry{"Q5_0", QuantMix::Q5_0, GgmlType::Q5_0},       MixEntry{"Q5_1", QuantMix::Q5_1, GgmlType::Q5_1},
    MixEntry{"Q2_K", QuantMix::Q2_K, GgmlType::Q2_K},       MixEntry{"Q2_K_S", QuantMix::Q2_K_S, GgmlType::Q2_K},
    MixEntry{"Q3_K", QuantMix::Q3_K_M, GgmlType::Q3_K},     MixEntry{"Q3_K_S", QuantMix::Q3_K_S, GgmlType::Q3_K},
    MixEntry{"Q3_K_M", QuantMix::Q3_K_M, GgmlType::Q3_K},   MixEntry{"Q3_K_L", QuantMix::Q3_K_L, GgmlType::Q3_K},
    MixEntry{"IQ4_NL", QuantMix::IQ4_NL, GgmlType::IQ4_NL}, MixEntry{"IQ4_XS", QuantMix::IQ4_XS, GgmlType::IQ4_XS},
    MixEntry{"Q4_K", QuantMix::Q4_K_M, GgmlType::Q4_K},     MixEntry{"Q4_K_S", QuantMix::Q4_K_S, GgmlType::Q4_K},
    MixEntry{"Q4_K_M", QuantMix::Q4_K_M, GgmlType::Q4_K},   MixEntry{"Q5_K", QuantMix::Q5_K_M, GgmlType::Q5_K},
    MixEntry{"Q5_K_S", QuantMix::Q5_K_S, GgmlType::Q5_K},   MixEntry{"Q5_K_M", QuantMix::Q5_K_M, GgmlType::Q5_K},
    MixEntry{"Q6_K", QuantMix::Q6_K, GgmlType::Q6_K},       MixEntry{"Q8_0", QuantMix::Q8_0, GgmlType::Q8_0},
    MixEntry{"F16", QuantMix::F16, GgmlType::F16},          MixEntry{"BF16", QuantMix::BF16, GgmlType::BF16},
    MixEntry{"F32", QuantMix::F32, GgmlType::F32},
};

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

bool is_alias(std::string_view name) { return name == "Q3_K" || name == "Q4_K" || name == "Q5_K"; }

const MixEntry& entry_of(QuantMix mix) {
  for (const auto& e : kMixes)
    if (e.mix == mix && !is_alias(e.name)) return e;
  throw std::logic_error("unknown QuantMix");
}

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// Block size of a type (1 for the float types).
uint64_t block_of(GgmlType t) { return ggml_traits(t).block_elems; }

// Broad tensor roles the rules are written in (not architecture-specific names).
enum class Category {
  TokenEmbd, AttnQ, AttnV, AttnK, AttnQkv, AttnKvB, AttnOutput, FfnUp, FfnGate, FfnDown, Output, Other
};

bool contains(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

bool is_token_embd(const std::string& name) {
  return name == "token_embd.weight" || name == "per_layer_token_embd.weight";
}

Category category_of(const std::string& name) {
  if (name == "output.weight") return Category::Output;
  if (is_token_embd(name)) return Category::TokenEmbd;
  if (contains(name, "attn_qkv.weight")) return Category::AttnQkv;
  if (contains(name, "attn_kv_b.weight")) return Category::AttnKvB;
  if (contains(name, "attn_v.weight")) return Category::AttnV;
  if (contains(name, "attn_k.weight")) return Category::AttnK;
  if (contains(name, "attn_q.weight")) return Category::AttnQ;
  if (contains(name, "attn_output.weight")) return Category::AttnOutput;
  if (contains(name, "ffn_up")) return Category::FfnUp;
  if (contains(name, "ffn_gate")) return Category::FfnGate;
  if (contains(name, "ffn_down")) return Category::FfnDown;
  return Category::Other;
}

// attn_v and the fused projections that contain it get attn_v's rules.
bool is_attn_v_like(Category c) {
  return c == Category::AttnV || c == Category::AttnQkv || c == Category::AttnKvB;
}

// Dimensions up to the last one that is not 1 (ggml_n_dims).
size_t n_dims(const std::vector<uint64_t>& shape) {
  size_t n = shape.size();
  while (n > 1 && shape[n - 1] == 1) --n;
  return n;
}

}  // namespace

bool allows_quantization(const RecipeTensor& t) {
  if (n_dims(t.shape) < 2) return false;
  const std::string& n = t.name;
  if (!n.ends_with("weight") || contains(n, "_norm.weight")) return false;
  static constexpr std::string_view kKeep[] = {
      "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
      "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
      "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
      "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight",
      "time_mix_a1.weight", "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight",
      "time_mix_decay_w1.weight", "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight",
      "attn_rel_b.weight", ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
      ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"};
  for (std::string_view k : kKeep)
    if (contains(n, k)) return false;
  return n != "position_embd.weight" && n != "token_types.weight";
}

namespace {

// "blk.N." prefix -> N, or -1 (sscanf("blk.%d.") as llama.cpp parses it).
int layer_of(const std::string& name) {
  int layer = -1;
  if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
  return layer;
}

bool requires_imatrix(const std::string& name, GgmlType type, QuantMix mix) {
  if (is_token_embd(name) || name == "output.weight") return false;
  switch (type) {
    case GgmlType::IQ3_XXS: case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS: case GgmlType::IQ2_S:
    case GgmlType::IQ1_M: case GgmlType::IQ1_S:
      return true;
    case GgmlType::Q2_K: return mix == QuantMix::Q2_K_S;  // the one K-quant that needs one
    default: return false;
  }
}

// State the rules carry from tensor to tensor, in llama.cpp's processing order.
struct RecipeState {
  const RecipeModel& model;
  const RecipeOptions& opt;
  int n_attn_v = 0;       // attn_v-like tensors in the model
  int i_attn_v = 0;       // attn_v-like tensors typed by the rules so far
  int i_ffn_down = 0;     // ffn_down tensors typed by the rules so far
  bool tied_embd = true;  // no output.weight: token_embd doubles as the output projection
};

// Layers 0..n/8, the last n/8, and every third one in between.
bool use_more_bits(int i_layer, int n_layer) {
  return i_layer < n_layer / 8 || i_layer >= 7 * n_layer / 8 || (i_layer - n_layer / 8) % 3 == 2;
}

// (layer, n_layer) the ffn rules use: for MoE models, from the name (experts are not stored
// consecutively); otherwise the running count of tensors of that kind.
std::pair<int, int> ffn_layer(const RecipeState& s, int counter, const std::string& name) {
  const int n_layer = static_cast<int>(s.model.n_layer);
  if (std::max<int64_t>(1, s.model.n_expert) <= 1) return {counter, n_layer};
  const int layer = layer_of(name);
  if (layer < 0 || layer >= n_layer)
    throw InputError(name, std::nullopt,
                     "cannot tell the layer of this MoE tensor (need blk.N. with N < " + std::to_string(n_layer) + ")");
  return {layer, n_layer};
}

// The mix's rules proper (llama_tensor_get_type_impl), for a tensor that gets quantized.
GgmlType mix_rule(RecipeState& s, GgmlType type, const RecipeTensor& t, Category cat) {
  using G = GgmlType;
  using M = QuantMix;
  const M mix = s.opt.mix;
  const bool falcon = s.model.arch == "falcon";
  const int64_t n_gqa = s.model.n_gqa(), n_expert = s.model.n_expert;

  if (cat == Category::Output || (s.tied_embd && cat == Category::TokenEmbd)) {
    if (s.opt.output_tensor_type) return *s.opt.output_tensor_type;
    if (falcon || t.shape[0] % block_of(type) != 0) return G::Q8_0;
    return type == G::Q8_0 ? type : G::Q6_K;
  }
  if (cat == Category::TokenEmbd) return type;
  if (is_attn_v_like(cat)) {
    if (mix == M::Q2_K) type = n_gqa >= 4 ? G::Q4_K : G::Q3_K;
    else if (mix == M::Q2_K_S && n_gqa >= 4) type = G::Q4_K;
    else if (mix == M::Q3_K_M) type = s.i_attn_v < 2 ? G::Q5_K : G::Q4_K;
    else if (mix == M::Q3_K_L) type = G::Q5_K;
    else if ((mix == M::IQ4_NL || mix == M::IQ4_XS) && n_gqa >= 4) type = G::Q5_K;
    else if ((mix == M::Q4_K_M || mix == M::Q5_K_M) && use_more_bits(s.i_attn_v, s.n_attn_v)) type = G::Q6_K;
    else if (mix == M::Q4_K_S && s.i_attn_v < 4) type = G::Q5_K;
    // 70B-class models share each attn_v over 8 heads: the tensor is small, more bits are cheap.
    if (s.model.is_70b && (type == G::Q3_K || type == G::Q4_K)) type = G::Q5_K;
    if (n_expert == 8) type = G::Q8_0;
    ++s.i_attn_v;
    return type;
  }
  if (cat == Category::AttnK) return n_expert == 8 ? G::Q8_0 : type;
  if (cat == Category::FfnDown) {
    const auto [i, n] = ffn_layer(s, s.i_ffn_down, t.name);
    if (mix == M::Q2_K) type = G::Q3_K;
    else if (mix == M::Q2_K_S) { if (i < n / 8) type = G::Q4_K; }
    else if (mix == M::Q3_K_M)
      type = i < n / 16 ? G::Q5_K : (!falcon || use_more_bits(i, n)) ? G::Q4_K : G::Q3_K;
    else if (mix == M::Q3_K_L) type = falcon ? G::Q4_K : G::Q5_K;
    else if (mix == M::Q4_K_M) {
      if (falcon) type = i < n / 16 ? G::Q6_K : use_more_bits(i, n) ? G::Q5_K : G::Q4_K;
      else if (use_more_bits(i, n)) type = G::Q6_K;
    } else if (i < n / 8 && (mix == M::IQ4_NL || mix == M::IQ4_XS) && !s.opt.has_imatrix) type = G::Q5_K;
    else if (mix == M::Q5_K_M && use_more_bits(i, n)) type = G::Q6_K;
    else if (mix == M::Q4_K_S && !falcon && i < n / 8) type = G::Q5_K;
    else if ((mix == M::Q4_0 || mix == M::Q5_0) && s.opt.has_imatrix && i < n / 8)
      type = mix == M::Q4_0 ? G::Q4_1 : G::Q5_1;  // guards the first ffn_down layers
    ++s.i_ffn_down;
    return type;
  }
  if (cat == Category::AttnOutput) {
    if (falcon) return mix == M::Q3_K_L ? G::Q4_K : type;
    if (n_expert == 8) {
      const bool bump = mix == M::Q2_K || mix == M::Q3_K_S || mix == M::Q3_K_M || mix == M::IQ4_NL ||
                        mix == M::Q4_K_S || mix == M::Q4_K_M || mix == M::IQ4_XS;
      return bump ? G::Q5_K : type;
    }
    if (mix == M::Q2_K) return G::Q3_K;
    if (mix == M::Q3_K_M) return G::Q4_K;
    if (mix == M::Q3_K_L) return G::Q5_K;
    return type;
  }
  if (cat == Category::FfnGate || cat == Category::FfnUp) ffn_layer(s, 0, t.name);  // MoE name check
  return type;
}

}  // namespace

GgmlType fit_row(GgmlType type, const RecipeTensor& t, bool& fell_back) {
  const uint64_t cols = t.shape[0];
  if (cols % block_of(type) == 0) return type;
  fell_back = true;
  GgmlType to = type;
  switch (type) {
    case GgmlType::IQ1_S: case GgmlType::IQ1_M: case GgmlType::IQ2_XXS: case GgmlType::IQ2_XS:
    case GgmlType::IQ2_S: case GgmlType::IQ3_XXS: case GgmlType::IQ3_S: case GgmlType::IQ4_XS:
      to = GgmlType::IQ4_NL; break;
    case GgmlType::Q2_0: case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::TQ1_0:
    case GgmlType::TQ2_0:
      to = GgmlType::Q4_0; break;
    case GgmlType::Q4_K: to = GgmlType::Q5_0; break;
    case GgmlType::Q5_K: to = GgmlType::Q5_1; break;
    case GgmlType::Q6_K: to = GgmlType::Q8_0; break;
    default:
      if (block_of(type) > 32)
        throw InputError(t.name, std::nullopt,
                         "row length " + std::to_string(cols) + " does not fit " +
                             std::string(ggml_type_name(type)) + " and no fallback type is defined");
  }
  return cols % block_of(to) == 0 ? to : GgmlType::F16;
}

namespace {

// A type the user named for a tensor must hold its rows as they are (no fallback applies).
GgmlType checked_user_type(GgmlType type, const RecipeTensor& t, const char* option) {
  if (t.shape[0] % block_of(type) != 0)
    throw InputError(option, std::nullopt,
                     std::string(ggml_type_name(type)) + " needs rows that are a multiple of " +
                         std::to_string(block_of(type)) + " but " + t.name + " has rows of " +
                         std::to_string(t.shape[0]));
  return type;
}

}  // namespace

std::optional<QuantMix> quant_mix_from_name(std::string_view name) {
  for (const auto& e : kMixes)
    if (iequals(e.name, name)) return e.mix;
  uint32_t number = 0;
  const auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), number);
  if (ec == std::errc() && end == name.data() + name.size() && !name.empty())
    for (const auto& e : kMixes)
      if (static_cast<uint32_t>(e.mix) == number) return e.mix;
  return std::nullopt;
}

std::string_view quant_mix_name(QuantMix mix) { return entry_of(mix).name; }

std::string supported_quant_mixes() {
  std::string s;
  for (const auto& e : kMixes) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

GgmlType quant_mix_default_type(QuantMix mix) { return entry_of(mix).default_type; }

RecipeModel recipe_model_from_metadata(const GgufMetadata& md, const std::string& label) {
  RecipeModel m;
  m.arch = md.get_string("general.architecture").value_or("");
  if (m.arch.empty()) throw InputError(label, std::nullopt, "general.architecture is missing");
  const std::string p = m.arch + ".";
  auto first_int = [&](const std::string& key) -> std::optional<int64_t> {
    const GgufValue* v = md.find(key);
    if (!v) return std::nullopt;
    if (const GgufArray* a = v->as_array()) return a->items.empty() ? std::nullopt : a->items[0].as_int();
    return v->as_int();
  };
  const auto n_layer = md.get_int(p + "block_count");
  if (!n_layer || *n_layer <= 0)
    throw InputError(label, std::nullopt, p + "block_count is missing or not a positive integer");
  m.n_layer = *n_layer;
  m.n_head = first_int(p + "attention.head_count").value_or(0);
  m.n_head_kv = first_int(p + "attention.head_count_kv").value_or(m.n_head);
  m.n_expert = md.get_int(p + "expert_count").value_or(0);
  // llama.cpp's LLM_TYPE_70B, for the architectures that can be classified so.
  const bool gqa = m.n_head != m.n_head_kv;
  m.is_70b = (m.arch == "llama" && m.n_layer == 80 && gqa) ||
             ((m.arch == "qwen2" || m.arch == "deci" || m.arch == "olmo") && m.n_layer == 80) ||
             (m.arch == "jais2" && m.n_layer == 68);
  return m;
}

TensorTypeOverride parse_tensor_type_override(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos)
    throw InputError("--tensor-type", std::nullopt, "'" + spec + "' is not PATTERN=TYPE");
  if (eq == 0) throw InputError("--tensor-type", std::nullopt, "'" + spec + "' has no tensor pattern");
  if (eq + 1 == spec.size()) throw InputError("--tensor-type", std::nullopt, "'" + spec + "' has no type");
  TensorTypeOverride o;
  o.pattern = spec.substr(0, eq);
  for (char& c : o.pattern) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string type_name = spec.substr(eq + 1);
  const auto type = ggml_type_from_name(type_name);
  if (!type) throw InputError("--tensor-type", std::nullopt, "unknown tensor type '" + type_name + "'");
  o.type = *type;
  try {
    o.regex = std::regex(o.pattern);
  } catch (const std::regex_error& e) {
    throw InputError("--tensor-type", std::nullopt, "'" + o.pattern + "' is not a valid regular expression: " + e.what());
  }
  return o;
}

void sort_like_llama_cpp(std::vector<RecipeTensor>& tensors) {
  std::stable_sort(tensors.begin(), tensors.end(), [](const RecipeTensor& a, const RecipeTensor& b) {
    const int la = layer_of(a.name), lb = layer_of(b.name);
    if (la != lb) return la < lb;
    return a.name < b.name;
  });
}

std::vector<TensorChoice> plan_tensor_types(const RecipeModel& model, const RecipeOptions& opt,
                                            const std::vector<RecipeTensor>& tensors) {
  RecipeState s{model, opt};
  for (const auto& t : tensors) {
    const Category c = category_of(t.name);
    if (is_attn_v_like(c)) ++s.n_attn_v;
    if (c == Category::Output) s.tied_embd = false;
  }
  const GgmlType default_type = quant_mix_default_type(opt.mix);
  std::vector<TensorChoice> out;
  out.reserve(tensors.size());
  for (const auto& t : tensors) {
    TensorChoice ch;
    ch.type = t.type;
    ch.quantizable = allows_quantization(t);
    if (!ch.quantizable) {
      out.push_back(ch);
      continue;
    }
    const Category cat = category_of(t.name);
    auto pattern_type = [&]() -> std::optional<GgmlType> {
      for (const auto& o : opt.tensor_types)
        if (std::regex_search(t.name, o.regex)) return o.type;
      return std::nullopt;
    };
    if (opt.token_embedding_type && cat == Category::TokenEmbd &&
        !(t.name == "per_layer_token_embd.weight" && pattern_type())) {
      ch.type = checked_user_type(*opt.token_embedding_type, t, "--token-embedding-type");
    } else if (opt.output_tensor_type && cat == Category::Output) {
      ch.type = checked_user_type(*opt.output_tensor_type, t, "--output-tensor-type");
    } else {
      ch.type = default_type;
      if (!is_float_type(default_type)) {
        const auto manual = pattern_type();
        if (manual) ch.type = *manual;
        else if (!opt.pure) ch.type = mix_rule(s, ch.type, t, cat);
        ch.type = fit_row(ch.type, t, ch.fell_back);
      }
    }
    ch.requires_imatrix = requires_imatrix(t.name, ch.type, opt.mix);
    out.push_back(ch);
  }
  return out;
}

}  // namespace optiq
