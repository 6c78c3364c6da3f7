// Which quantization types each tensor may get: the candidates whose damage is measured and
// among which the allocator chooses. Candidates are named by bits ("4,8" → Q4_K, Q8_0) or by
// type; a type whose blocks do not divide a tensor's rows falls back as llama.cpp falls back
// (Q4_K → Q5_0 for 576-wide rows), and `--protect REGEX=TYPE` floors raise the lower end.
#pragma once

#include <cstdint>
#include <regex>
#include <string>
#include <vector>

#include "io/ggml_type.h"
#include "model/model_source.h"

namespace optiq::sensitivity {

// Bits → type: 2 Q2_K, 3 Q3_K, 4 Q4_K, 5 Q5_K, 6 Q6_K, 8 Q8_0, 16 F16. Throws InputError
// (naming `option`) for other values or an empty list.
std::vector<GgmlType> candidate_types_from_bits(const std::vector<int>& bits, const char* option);

// Parses "Q3_K,Q4_K,Q8_0"; throws InputError for an unknown type or one optiq cannot write.
std::vector<GgmlType> parse_candidate_types(const std::string& list, const char* option);

// Storage cost of a type in bits per weight, scales included (Q4_K 4.5, Q8_0 8.5).
double type_bpw(GgmlType type);

// --protect REGEX=MIN_TYPE: tensors whose name contains a match of REGEX get no candidate
// below MIN_TYPE's bits per weight.
struct ProtectRule {
  std::string spec;  // as given, for messages and the report
  std::regex regex;  // ECMAScript
  GgmlType min_type = GgmlType::F32;
};
ProtectRule parse_protect_rule(const std::string& spec);

struct TensorCandidates {
  const SourceTensor* source = nullptr;  // into the ModelSource
  std::vector<GgmlType> types;  // distinct, ascending in bits per weight; at least one
};

// For every tensor llama-quantize would quantize (in llama.cpp's order): the requested types
// after per-shape fallback, deduplicated; protected tensors keep only types at or above their
// floor, or the floor type itself when no candidate reaches it. Non-quantizable tensors are
// not listed (they keep their stored type).
// `keep_stored`: a tensor the source already stores in a quantized type also gets that type
// (within its floor). Written in its own type a tensor keeps its bytes, so for a quantized
// source this candidate costs no more error than the source already has, where requantizing
// to any type, the same one included, adds a second rounding.
std::vector<TensorCandidates> plan_candidates(const ModelSource& source, const std::vector<GgmlType>& requested,
                                              const std::vector<ProtectRule>& protect, bool keep_stored = true);

// Bytes of tensor t stored as `type`.
uint64_t tensor_bytes_as(const SourceTensor& t, GgmlType type);

}  // namespace optiq::sensitivity
