// config.json -> the `<arch>.*` hyperparameter keys llama.cpp reads, with the defaults and
// key choices llama.cpp's own converter uses for each architecture.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "io/gguf.h"
#include "model/arch.h"

namespace optiq {

struct HfConfig {
  Arch arch = Arch::Llama;
  nlohmann::json params;  // the text model's hyperparameters (text_config merged in for Gemma 3)

  int64_t n_layers() const;
  int64_t n_heads() const;
  int64_t n_kv_heads() const;  // n_heads when the config omits it
};

// Parses config.json (path used in messages). Throws InputError for invalid JSON, a missing
// or unsupported "architectures" entry (listing the supported ones) or a missing key.
HfConfig parse_hf_config(const std::string& path);

// The rope settings for full-attention layers, whichever way the config spells them:
// "rope_parameters" (newer transformers, possibly split per attention type) or "rope_scaling",
// with rope_theta, rope_type and original_max_position_embeddings filled in from the top level.
nlohmann::json hf_rope_parameters(const nlohmann::json& params);

// Writes general.* and <arch>.* keys for the model into `out`.
void hf_config_to_gguf(const HfConfig& config, const std::string& model_name, GgufMetadata& out);

}  // namespace optiq
