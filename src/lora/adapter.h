// LoRA adapters as optiq holds them, whatever file they came from: for each adapted projection
// of a base model, the two factors of its update ΔW = scale · B·A, in f32 and in the base's
// GGUF naming and row order. Read from Hugging Face PEFT folders (peft.cpp) or llama.cpp's
// GGUF-LoRA files (gguf_lora.cpp), written as GGUF-LoRA, and resolved onto a loaded model as
// the engine's LowRankDeltas (applied unmerged, the base staying quantized).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/low_rank.h"
#include "engine/model.h"

namespace optiq::lora {

// One adapted projection.
struct LoraMatrix {
  std::string target;    // the base weight's GGUF name, e.g. "blk.3.attn_q.weight"
  int64_t rank = 0;      // r
  int64_t n_in = 0;      // the base weight's row length (input features)
  int64_t n_out = 0;     // the base weight's rows (output features)
  std::vector<float> a;    // [rank, n_in]: LoRA's A (PEFT lora_A, ggml's lora_a)
  std::vector<float> b_t;  // [rank, n_out]: LoRA's B transposed (the files hold [n_out, rank]),
                           // outputs in the base's GGUF row order (llama's q/k rotary-permuted as
                           // the converter permutes the base's rows)
  float scale = 1.0f;    // alpha / r, or alpha / sqrt(r) with rsLoRA, per-module patterns applied
  // a and b_t rounded to f16, what the engine multiplies (load_adapter fills them): an adapter on
  // every projection of a small model is a fifth of its Q4 bytes in f32, and decode streams it.
  std::vector<uint16_t> a_f16, b_t_f16;
};

struct Adapter {
  std::string path;          // the file or folder it was read from, for messages
  std::string architecture;  // GGUF general.architecture of the base it was made for
  std::vector<LoraMatrix> matrices;

  // Bytes its factors take in memory (f32 and f16 copies).
  uint64_t bytes() const;
  // Frees the f32 factors once only the engine's f16 ones are needed (a server's adapters).
  void drop_f32();
};

// Reads a PEFT adapter (a folder with adapter_config.json and adapter_model.safetensors, or
// that config file itself) or a GGUF-LoRA file, for `base`: names mapped to the base's tensors,
// q/k rows permuted where the base's are. Throws InputError naming the file and tensor for a
// file that is not an adapter, an adapter for another architecture, a tensor the base does not
// have or whose shape differs, rank 0, NaN/Inf values, or a module the engine cannot adapt.
Adapter load_adapter(const std::filesystem::path& path, const engine::Model& base);

// Fills every matrix's a_f16 and b_t_f16 from its f32 factors (load_adapter calls it). Throws
// InputError for a value beyond f16's range.
void make_f16_factors(Adapter& adapter);

// The engine's deltas for `adapter` on `model` times `user_scale` (the weights must be the
// ones load_adapter checked it against, which also made the f16 factors). The deltas point into
// `adapter` and `model`.
std::vector<engine::LowRankDelta> resolve(const Adapter& adapter, const engine::Model& model, float user_scale);

// A row-major [rows, cols] matrix as [cols, rows].
std::vector<float> transposed(const std::vector<float>& m, int64_t rows, int64_t cols);

// "PATH" or "PATH:SCALE" (the command-line form) -> path and scale (1 when absent). A suffix
// after the last ':' that is not a number belongs to the path.
struct AdapterSpec {
  std::string path;
  float scale = 1.0f;
};
AdapterSpec parse_adapter_spec(const std::string& spec);

}  // namespace optiq::lora
