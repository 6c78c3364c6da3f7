// llama.cpp's GGUF-LoRA files: general.type = "adapter", adapter.type = "lora", one
// adapter.lora.alpha (f32) for the file, and per adapted weight "<base name>.lora_a" (ggml shape
// [n_in, r]) and "<base name>.lora_b" ([r, n_out]). llama.cpp scales each pair by alpha / r with
// r read from the tensor (no scaling when alpha is 0).
#pragma once

#include <filesystem>

#include "lora/adapter.h"

namespace optiq::lora {

// The file's pairs as LoraMatrix (n_in, n_out from the shapes, scale alpha / r); factors of any
// type optiq can dequantize. Throws InputError naming the file and key or tensor for a file
// that is not a LoRA adapter, a lone or misshapen factor, or a tensor name without the
// .lora_a/.lora_b suffix. Not checked against a base here (load_adapter does that).
Adapter read_gguf_lora(const std::filesystem::path& path);

// Writes `adapter` as a GGUF-LoRA file (atomically) that llama.cpp loads with --lora. The file
// holds one alpha, alpha_0 = scale_0 · r_0 of the first matrix with a non-zero scale; every
// matrix's B is multiplied by scale_i · r_i / alpha_0 so that llama.cpp's alpha / r gives it
// its own scale.
// Factors are written as F32.
void write_gguf_lora(const Adapter& adapter, const std::filesystem::path& path);

}  // namespace optiq::lora
