// `optiq lora merge`: a model with adapters folded into its weights, W' = W + Σ scale·B·A, as a
// GGUF (llama-export-lora's job). Tensors no adapter touches are copied byte for byte; merged
// ones are requantized to their stored type, or to one type for all of them.
#pragma once

#include <optional>
#include <span>
#include <string>

#include "io/ggml_type.h"
#include "lora/adapter.h"
#include "model/model_source.h"

namespace optiq::lora {

struct ScaledAdapter {
  const Adapter* adapter = nullptr;  // checked against the base (load_adapter)
  float scale = 1.0f;                // the user's, times each matrix's own
};

// Writes `base` with `adapters` merged to `out_path` (atomically). `type`: the type every merged
// tensor is written as; nullopt keeps each one's stored type. Throws InputError when a merged
// tensor's type cannot be written by optiq (it names the tensor), a merged value is not finite,
// or `base` is not a GGUF file.
void merge_adapters(const ModelSource& base, std::span<const ScaledAdapter> adapters, std::optional<GgmlType> type,
                    const std::string& out_path);

}  // namespace optiq::lora
