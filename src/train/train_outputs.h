// What `optiq lora train` leaves in its output folder, each file written atomically:
//   adapter_config.json, adapter_model.safetensors  the PEFT adapter (ranks in rank_pattern)
//   adapter.gguf                                     the same as llama.cpp's GGUF-LoRA (--lora)
//   optiq_lora_config.json                           ranks per tensor, the rank rule and its
//                                                    inputs, data, hyper-parameters, curves
//   train-state.safetensors                          the resume state (train_state.h)
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

#include "engine/model.h"
#include "lora/adapter.h"
#include "train/lora_model.h"

namespace optiq::train {

inline constexpr const char* kGgufAdapterFile = "adapter.gguf";
inline constexpr const char* kTrainConfigFile = "optiq_lora_config.json";
inline constexpr const char* kTrainStateFile = "train-state.safetensors";

// The trained factors as a lora::Adapter in f32 (B transposed into b_t; names, rows and scales as
// the base's GGUF has them), for the PEFT and GGUF-LoRA writers.
lora::Adapter to_adapter(const TrainableAdapter<float>& factors, const engine::Model& model);

// Writes the PEFT folder, the GGUF-LoRA file and optiq_lora_config.json (`config`) into `dir`.
// base_model names the base in the PEFT config; base_rank and alpha are its r and lora_alpha.
void write_train_outputs(const std::filesystem::path& dir, const TrainableAdapter<float>& factors,
                         const engine::Model& model, const std::string& base_model, int64_t base_rank, double alpha,
                         const nlohmann::json& config);

}  // namespace optiq::train
