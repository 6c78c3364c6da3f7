// Hugging Face PEFT LoRA adapters: adapter_config.json (r, lora_alpha, use_rslora,
// target_modules, rank_pattern, alpha_pattern, fan_in_fan_out) beside adapter_model.safetensors
// ("base_model.model.<module>.lora_A.weight" of shape (r, in), "...lora_B.weight" of (out, r);
// F32, F16 or BF16).
#pragma once

#include <filesystem>

#include "engine/model.h"
#include "lora/adapter.h"

namespace optiq::lora {

// `path`: the adapter folder or its adapter_config.json. Each module's scale is alpha / r
// (alpha / sqrt(r) with use_rslora), r and alpha taken from rank_pattern / alpha_pattern when a
// key matches the module's name (the key equal to the name or to a dot-separated suffix of it,
// or a regular expression matching such a suffix), from r and lora_alpha otherwise.
// fan_in_fan_out concerns Conv1D bases, which the engine's architectures do not have; PEFT
// turns it off for Linear layers and so does optiq. Names map to GGUF names as the model
// converter maps the base's, and B's rows of llama q/k projections are permuted as the base's
// were (hp says the architecture and head counts). Throws InputError naming the file, field or
// tensor for a malformed config, a missing factor, a module that is not a q/k/v/o or
// gate/up/down projection, or a rank that differs from the config's.
Adapter read_peft(const std::filesystem::path& path, const engine::HParams& hp);

}  // namespace optiq::lora
