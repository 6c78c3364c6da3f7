// `optiq quantize`: a model source (GGUF of any type optiq reads, or a Hugging Face folder)
// rewritten with the per-tensor types of a llama.cpp mix (see quant/recipe.h), streamed tensor
// by tensor: peak memory is the mapped input plus one slab of one tensor's rows. Each tensor's
// rows are quantized in parallel and checked for NaN/Inf; the output appears only when complete.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "model/model_source.h"
#include "quant/recipe.h"

namespace optiq {

struct QuantizeOptions {
  RecipeOptions recipe;        // mix, overrides, --pure (recipe.has_imatrix is set from imatrix)
  std::string output_path;     // unused for a dry run
  int threads = 1;             // rows quantized in parallel
  // Per-column importance by weight name ([n_expert * n_cols] each, see imatrix_importance);
  // empty: no importance matrix.
  std::map<std::string, std::vector<float>> imatrix;
  std::string imatrix_path;               // recorded as quantize.imatrix.file
  std::vector<std::string> imatrix_datasets;  // first one recorded as quantize.imatrix.dataset
  int32_t imatrix_chunks = 0;             // recorded as quantize.imatrix.chunks_count when > 0
};

struct PlannedTensor {
  const SourceTensor* source = nullptr;  // points into the ModelSource
  GgmlType from = GgmlType::F32;         // type as the recipe sees it (the stored type)
  GgmlType to = GgmlType::F32;           // type written
  bool fell_back = false;                // the row length forced a fallback type
  const std::vector<float>* importance = nullptr;  // imatrix entry used, or null
  uint64_t bytes_from = 0;               // stored bytes
  uint64_t bytes_to = 0;                 // bytes written
};

struct QuantizePlan {
  std::vector<PlannedTensor> tensors;  // in llama.cpp's order (the output order)
  uint32_t file_type = 0;              // general.file_type (llama_ftype)
  int n_fallback = 0;                  // tensors whose rows did not fit the chosen type
  uint64_t n_params = 0;               // elements over all tensors
  uint64_t bytes_from = 0, bytes_to = 0;  // tensor data before / after
};

// Chooses every tensor's type and checks the importance matrix against the model. Throws
// InputError for an imatrix entry whose size does not match its tensor, an imatrix that names
// none of the model's tensors, a type that needs an imatrix without one, or a type optiq
// cannot write.
QuantizePlan plan_quantization(const ModelSource& source, const QuantizeOptions& options);

// Writes the plan. `on_tensor(i)` is called after tensor i is written (progress).
void write_quantized(const ModelSource& source, const QuantizePlan& plan, const QuantizeOptions& options,
                     const std::function<void(size_t)>& on_tensor = {});

}  // namespace optiq
