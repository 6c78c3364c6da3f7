// The model architectures optiq understands, under the names llama.cpp gives them
// (general.architecture) and the Hugging Face class names that map to them.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace optiq {

enum class Arch { Llama, Qwen2, Qwen3, Gemma3 };

std::string_view arch_gguf_name(Arch arch);  // "llama", "qwen2", "qwen3", "gemma3"
std::optional<Arch> arch_from_gguf_name(std::string_view name);
// From config.json's "architectures"[0], e.g. "Qwen2ForCausalLM".
std::optional<Arch> arch_from_hf_class(std::string_view hf_class);
// One line for error messages: every supported HF class and GGUF name.
std::string supported_architectures();

}  // namespace optiq
