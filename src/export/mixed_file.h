// A GGUF whose quantizable tensors each get a chosen type (the output of an allocation), written
// by `optiq quantize`'s writer: every tensor's type is an anchored --tensor-type override over a
// block mix, so any per-tensor assignment applies, and general.file_type names the mix of the
// predominant type (what llama.cpp prints as the file's type).
#pragma once

#include <utility>
#include <vector>

#include "export/quantize_model.h"
#include "model/model_source.h"
#include "quant/recipe.h"

namespace optiq {

// The llama_ftype of the mix a mostly-`type` file is closest to (Q4_K -> Q4_K_M).
QuantMix file_type_for(GgmlType type);

// One (tensor, type) pair per quantizable tensor; the tensors point into the ModelSource.
using TensorTypeList = std::vector<std::pair<const SourceTensor*, GgmlType>>;

// Adds the overrides for `types` to `w` (its mix becomes Q8_0) and plans the file. The plan
// points into `w` (importance entries): keep `w` alive while the plan is used.
QuantizePlan plan_mixed_file(const ModelSource& source, QuantizeOptions& w, const TensorTypeList& types);

}  // namespace optiq
