// Hugging Face tensor names -> the GGUF names llama.cpp's loader looks up.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "model/arch.h"

namespace optiq {

struct HfTensorMapping {
  bool skip = false;     // present in HF checkpoints but not part of a llama.cpp text model
  std::string gguf_name; // when !skip
  int layer = -1;        // block index for "blk.N.*" tensors
};

// nullopt for a name the architecture does not have (the caller reports it).
std::optional<HfTensorMapping> map_hf_tensor_name(Arch arch, std::string_view hf_name);

}  // namespace optiq
