#include "model/hf_tensor_names.h"

#include <array>
#include <charconv>

namespace optiq {
namespace {

struct Suffix {
  std::string_view hf;    // after "layers.N."
  std::string_view gguf;  // after "blk.N."
};

// Per-block tensors shared by all four architectures.
constexpr std::array<Suffix, 13> kBlockCommon{{
    {"self_attn.q_proj.weight", "attn_q.weight"},
    {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},
    {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},
    {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},
    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
    {"input_layernorm.weight", "attn_norm.weight"},
}};

// Llama/Qwen have one norm before the MLP; Gemma 3 norms both sides of attention and MLP.
constexpr std::array<Suffix, 1> kBlockPreNorm{{
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
}};
constexpr std::array<Suffix, 3> kBlockGemma3{{
    {"post_attention_layernorm.weight", "post_attention_norm.weight"},
    {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
}};

bool consume(std::string_view& s, std::string_view prefix) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  return true;
}

template <size_t N>
std::optional<std::string_view> lookup(const std::array<Suffix, N>& table, std::string_view hf) {
  for (const auto& e : table)
    if (e.hf == hf) return e.gguf;
  return std::nullopt;
}

}  // namespace

std::optional<HfTensorMapping> map_hf_tensor_name(Arch arch, std::string_view name) {
  HfTensorMapping m;
  if (arch == Arch::Gemma3) {
    // Gemma3ForConditionalGeneration nests the text model; its vision half is not converted.
    if (name.starts_with("vision_tower.") || name.starts_with("multi_modal_projector.") ||
        name.starts_with("model.vision_tower.") || name.starts_with("model.multi_modal_projector.")) {
      m.skip = true;
      return m;
    }
    if (!consume(name, "language_model.model.") && !consume(name, "model.language_model."))
      consume(name, "model.");
    if (name == "language_model.lm_head.weight") name = "lm_head.weight";
  } else {
    consume(name, "model.");
  }

  if (name == "embed_tokens.weight") return HfTensorMapping{false, "token_embd.weight", -1};
  if (name == "norm.weight") return HfTensorMapping{false, "output_norm.weight", -1};
  if (name == "lm_head.weight") return HfTensorMapping{false, "output.weight", -1};

  if (!consume(name, "layers.")) return std::nullopt;
  int layer = 0;
  auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), layer);
  if (ec != std::errc() || end == name.data() || *end != '.') return std::nullopt;
  name.remove_prefix(static_cast<size_t>(end - name.data()) + 1);

  if (name.ends_with("rotary_emb.inv_freq")) {  // recomputed by llama.cpp from rope settings
    m.skip = true;
    return m;
  }
  auto suffix = lookup(kBlockCommon, name);
  if (!suffix) suffix = arch == Arch::Gemma3 ? lookup(kBlockGemma3, name) : lookup(kBlockPreNorm, name);
  if (!suffix) return std::nullopt;
  return HfTensorMapping{false, "blk." + std::to_string(layer) + "." + std::string(*suffix), layer};
}

}  // namespace optiq
