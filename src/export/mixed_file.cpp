#include "export/mixed_file.h"

#include <algorithm>
#include <map>

#include "export/mixed_convert.h"

namespace optiq {

QuantMix file_type_for(GgmlType type) {
  switch (type) {
    case GgmlType::Q2_K: return QuantMix::Q2_K;
    case GgmlType::Q3_K: return QuantMix::Q3_K_M;
    case GgmlType::Q4_K: return QuantMix::Q4_K_M;
    case GgmlType::Q5_K: return QuantMix::Q5_K_M;
    case GgmlType::Q6_K: return QuantMix::Q6_K;
    case GgmlType::Q4_0: return QuantMix::Q4_0;
    case GgmlType::Q4_1: return QuantMix::Q4_1;
    case GgmlType::Q5_0: return QuantMix::Q5_0;
    case GgmlType::Q5_1: return QuantMix::Q5_1;
    case GgmlType::IQ4_NL: return QuantMix::IQ4_NL;
    case GgmlType::IQ4_XS: return QuantMix::IQ4_XS;
    case GgmlType::F16: return QuantMix::F16;
    case GgmlType::BF16: return QuantMix::BF16;
    default: return QuantMix::Q8_0;
  }
}

QuantizePlan plan_mixed_file(const ModelSource& source, QuantizeOptions& w, const TensorTypeList& types) {
  std::map<GgmlType, uint64_t> params_by_type;
  for (const auto& [tensor, type] : types) params_by_type[type] += tensor->n_elements();
  w.recipe.mix = QuantMix::Q8_0;  // a block mix, so that every per-tensor pattern applies
  for (const auto& [tensor, type] : types) {
    TensorTypeOverride ov;
    ov.pattern = tensor_type_pattern(tensor->name);
    ov.regex = std::regex(ov.pattern);
    ov.type = type;
    w.recipe.tensor_types.push_back(std::move(ov));
  }
  QuantizePlan plan = plan_quantization(source, w);
  if (!params_by_type.empty()) {
    const GgmlType predominant = std::max_element(params_by_type.begin(), params_by_type.end(),
                                                  [](const auto& a, const auto& b) { return a.second < b.second; })->first;
    plan.file_type = static_cast<uint32_t>(file_type_for(predominant));
  }
  return plan;
}

}  // namespace optiq
