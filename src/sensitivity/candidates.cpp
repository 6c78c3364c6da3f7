#include "sensitivity/candidates.h"

#include <algorithm>

#include "export/convert.h"
#include "quant/quantize.h"
#include "quant/recipe.h"
#include "util/error.h"

namespace optiq::sensitivity {
namespace {

bool writable(GgmlType t) {
  return t == GgmlType::F16 || t == GgmlType::BF16 || t == GgmlType::F32 || quantize_supported(t);
}

}  // namespace

std::vector<GgmlType> candidate_types_from_bits(const std::vector<int>& bits, const char* option) {
  if (bits.empty()) throw InputError(option, std::nullopt, "needs at least one number of bits");
  std::vector<GgmlType> out;
  for (int b : bits) {
    switch (b) {
      case 2: out.push_back(GgmlType::Q2_K); break;
      case 3: out.push_back(GgmlType::Q3_K); break;
      case 4: out.push_back(GgmlType::Q4_K); break;
      case 5: out.push_back(GgmlType::Q5_K); break;
      case 6: out.push_back(GgmlType::Q6_K); break;
      case 8: out.push_back(GgmlType::Q8_0); break;
      case 16: out.push_back(GgmlType::F16); break;
      default:
        throw InputError(option, std::nullopt,
                         std::to_string(b) + " bits is not a candidate; use 2, 3, 4, 5, 6, 8 or 16 "
                         "(or --candidate-types)");
    }
  }
  return out;
}

std::vector<GgmlType> parse_candidate_types(const std::string& list, const char* option) {
  std::vector<GgmlType> out;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string name = list.substr(start, comma - start);
    const auto type = ggml_type_from_name(name);
    if (!type) throw InputError(option, std::nullopt, "unknown tensor type '" + name + "'");
    if (!writable(*type))
      throw InputError(option, std::nullopt, "optiq cannot write " + name + " tensors");
    out.push_back(*type);
    start = comma + 1;
  }
  return out;
}

double type_bpw(GgmlType type) {
  const auto& t = ggml_traits(type);
  return 8.0 * static_cast<double>(t.block_bytes) / static_cast<double>(t.block_elems);
}

ProtectRule parse_protect_rule(const std::string& spec) {
  const size_t eq = spec.rfind('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw InputError("--protect", std::nullopt, "'" + spec + "' is not REGEX=MIN_TYPE");
  ProtectRule rule;
  rule.spec = spec;
  const std::string type_name = spec.substr(eq + 1);
  const auto type = ggml_type_from_name(type_name);
  if (!type || !writable(*type))
    throw InputError("--protect", std::nullopt, "'" + type_name + "' in '" + spec + "' is not a type optiq writes");
  rule.min_type = *type;
  try {
    rule.regex = std::regex(spec.substr(0, eq), std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw InputError("--protect", std::nullopt, "'" + spec.substr(0, eq) + "' is not a valid regex: " + e.what());
  }
  return rule;
}

uint64_t tensor_bytes_as(const SourceTensor& t, GgmlType type) {
  const auto row = ggml_row_bytes(type, t.shape[0]);
  if (!row) throw std::invalid_argument(t.name + ": rows do not fit " + std::string(ggml_type_name(type)));
  return *row * (t.n_elements() / t.shape[0]);
}

std::vector<TensorCandidates> plan_candidates(const ModelSource& source, const std::vector<GgmlType>& requested,
                                              const std::vector<ProtectRule>& protect, bool keep_stored) {
  std::vector<RecipeTensor> rts;
  for (const auto& t : source.tensors) {
    const GgmlType stored = source.kind == SourceKind::HuggingFace ? float_outtype_for(t, t.type) : t.type;
    rts.push_back({t.name, t.shape, stored});
  }
  sort_like_llama_cpp(rts);
  auto by_bpw = [](GgmlType a, GgmlType b) { return type_bpw(a) < type_bpw(b); };

  std::vector<TensorCandidates> out;
  for (const RecipeTensor& rt : rts) {
    if (!allows_quantization(rt)) continue;
    TensorCandidates c;
    c.source = source.find(rt.name);
    for (GgmlType want : requested) {
      bool fell_back = false;
      const GgmlType t = fit_row(want, rt, fell_back);
      if (std::find(c.types.begin(), c.types.end(), t) == c.types.end()) c.types.push_back(t);
    }
    const bool stored_quantized = quantize_supported(rt.type) && c.source->transform.identity();
    if (keep_stored && stored_quantized && std::find(c.types.begin(), c.types.end(), rt.type) == c.types.end())
      c.types.push_back(rt.type);
    for (const ProtectRule& rule : protect) {
      if (!std::regex_search(rt.name, rule.regex)) continue;
      bool fell_back = false;
      const GgmlType floor = fit_row(rule.min_type, rt, fell_back);
      std::erase_if(c.types, [&](GgmlType t) { return type_bpw(t) < type_bpw(floor); });
      if (c.types.empty()) c.types.push_back(floor);
      break;
    }
    std::sort(c.types.begin(), c.types.end(), by_bpw);
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace optiq::sensitivity
