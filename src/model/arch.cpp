#include "model/arch.h"

#include <array>

namespace optiq {
namespace {

struct ArchNames {
  Arch arch;
  std::string_view gguf_name;
  std::array<std::string_view, 3> hf_classes;  // unused slots are empty
};

// HF class lists follow llama.cpp's converter registrations for these architectures.
constexpr std::array<ArchNames, 4> kArchs{{
    {Arch::Llama, "llama", {"LlamaForCausalLM", "LlamaModel", ""}},
    {Arch::Qwen2, "qwen2", {"Qwen2ForCausalLM", "Qwen2Model", ""}},
    {Arch::Qwen3, "qwen3", {"Qwen3ForCausalLM", "Qwen3Model", ""}},
    {Arch::Gemma3, "gemma3", {"Gemma3ForCausalLM", "Gemma3ForConditionalGeneration", ""}},
}};

}  // namespace

std::string_view arch_gguf_name(Arch arch) {
  for (const auto& a : kArchs)
    if (a.arch == arch) return a.gguf_name;
  return "?";
}

std::optional<Arch> arch_from_gguf_name(std::string_view name) {
  for (const auto& a : kArchs)
    if (a.gguf_name == name) return a.arch;
  return std::nullopt;
}

std::optional<Arch> arch_from_hf_class(std::string_view hf_class) {
  for (const auto& a : kArchs)
    for (auto c : a.hf_classes)
      if (!c.empty() && c == hf_class) return a.arch;
  return std::nullopt;
}

std::string supported_architectures() {
  std::string s;
  for (const auto& a : kArchs) {
    if (!s.empty()) s += "; ";
    s += std::string(a.gguf_name) + " (";
    bool first = true;
    for (auto c : a.hf_classes) {
      if (c.empty()) continue;
      s += (first ? "" : ", ") + std::string(c);
      first = false;
    }
    s += ")";
  }
  return s;
}

}  // namespace optiq
