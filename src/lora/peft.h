// Hugging Face PEFT LoRA adapters, read and written: adapter_config.json (r, lora_alpha,
// use_rslora, target_modules, rank_pattern, alpha_pattern, fan_in_fan_out) beside
// adapter_model.safetensors ("base_model.model.<module>.lora_A.weight" of shape (r, in),
// "...lora_B.weight" of (out, r); F32, F16 or BF16).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// The config fields of a written adapter that its matrices do not give.
struct PeftWriteOptions {
  std::string base_model;  // base_model_name_or_path: the HF repo id or folder of the base model
  int64_t base_rank = 0;   // r: the rank of every module rank_pattern does not name (> 0)
  double alpha = 0;        // lora_alpha: the alpha of every module alpha_pattern does not name
};

// Writes `adapter` (made for a base with hyperparameters `hp`) into the folder `dir` (created if
// needed) as a PEFT LoRA adapter that Hugging Face PEFT loads as it is, the exact inverse of
// read_peft: adapter_config.json (peft_type LORA, task_type CAUSAL_LM, r and lora_alpha from
// `opts`, target_modules the projection names present such as ["q_proj", "v_proj"], rank_pattern
// and alpha_pattern keyed by full module paths such as "model.layers.3.self_attn.q_proj" for every
// module whose rank differs from r or whose alpha differs from lora_alpha; no dropout, no bias,
// no rsLoRA, inference mode) and adapter_model.safetensors (F32 "base_model.model.<module>.
// lora_A.weight" [r, in] and "...lora_B.weight" [out, r], B's rows of llama's q/k projections
// returned to HF's order). Each module's alpha is scale · r, so PEFT's alpha / r is the matrix's
// scale. Module paths are those of the *ForCausalLM classes ("model.layers.N."), which for Gemma 3
// is Gemma3ForCausalLM's layout. Both files are written atomically, a previous config removed
// first and the new one written last, so a folder holding a config holds the matching weights.
// Throws InputError naming the adapter and target for a matrix that is not a block projection of
// hp's architecture, an adapter made for another architecture, a target adapted twice, a rank or
// shape that is not positive, factors of the wrong size, a non-finite scale, or q/k rows that are
// not a multiple of 2 × heads; std::invalid_argument for options without a positive base rank or
// a finite alpha.
void write_peft(const Adapter& adapter, const engine::HParams& hp, const PeftWriteOptions& opts,
                const std::filesystem::path& dir);

// Llama's q/k projections have their rows rotary-permuted by the model converter (HF's two halves
// of each head interleaved, as llama.cpp's rope expects), and so have their LoRA B's: the head
// count of `gguf_name` when it is such a projection of hp's architecture, nullopt otherwise.
std::optional<int64_t> rope_permuted_heads(const engine::HParams& hp, std::string_view gguf_name);

// B [n_out, r] of such a projection of `heads` heads (n_out a multiple of 2 · heads) from HF's row
// order to llama.cpp's (to_gguf) or back: HF row h·d + j·d/2 + i is llama.cpp's row h·d + 2·i + j,
// d = n_out / heads.
std::vector<float> permute_rope_rows(const std::vector<float>& b, int64_t n_out, int64_t r, int64_t heads, bool to_gguf);

}  // namespace optiq::lora
