#include "kv/kv_candidates.h"

#include <algorithm>
#include <string_view>

#include "util/error.h"
#include "util/list_parse.h"

namespace optiq::kv {
namespace {

struct KindBits {
  std::string_view kind;  // "affine" or "turbo"
  int bits;               // the --candidate-bits value
  std::string_view type;  // the engine's KV type name
};

constexpr KindBits kKindBits[] = {
    {"affine", 16, "f16"}, {"affine", 8, "q8_0"}, {"affine", 5, "q5_0"}, {"affine", 4, "q4_0"},
    {"turbo", 4, "tq4"},   {"turbo", 3, "tq3"},   {"turbo", 2, "tq2"},
};

bool known_kind(const std::string& kind) {
  return std::any_of(std::begin(kKindBits), std::end(kKindBits), [&](const KindBits& k) { return k.kind == kind; });
}

std::string offered_bits(const std::vector<std::string>& kinds) {
  std::string s;
  for (const auto& k : kKindBits)
    if (std::find(kinds.begin(), kinds.end(), k.kind) != kinds.end())
      s += (s.empty() ? "" : ", ") + std::to_string(k.bits) + " " + std::string(k.type);
  return s;
}

}  // namespace

std::vector<engine::KVType> kv_candidates_from_bits(const std::vector<int>& bits, const std::vector<std::string>& kinds) {
  if (kinds.empty()) throw InputError("--kinds", std::nullopt, "no kind given (affine, turbo)");
  for (const auto& kind : kinds)
    if (!known_kind(kind)) throw InputError("--kinds", std::nullopt, "'" + kind + "' is not a kind (affine, turbo)");
  if (bits.empty()) throw InputError("--candidate-bits", std::nullopt, "no bits given");
  std::vector<engine::KVType> types;
  std::vector<std::string> missing;
  for (int b : bits) {
    bool offered = false;
    for (const auto& k : kKindBits) {
      if (k.bits != b || std::find(kinds.begin(), kinds.end(), k.kind) == kinds.end()) continue;
      offered = true;
      if (const auto t = engine::kv_type_from_name(k.type)) types.push_back(*t);
      else missing.emplace_back(k.type);
    }
    if (!offered)
      throw InputError("--candidate-bits", std::nullopt,
                       std::to_string(b) + " bits is not offered by the kinds asked for (" + offered_bits(kinds) + ")");
  }
  if (!missing.empty()) {
    std::string names;
    for (const auto& m : missing) names += (names.empty() ? "" : ", ") + m;
    throw InputError("--kinds", std::nullopt,
                     "this build's KV cache has no type " + names + " (it has " + engine::kv_type_names() +
                         "); TurboQuant cache types are not in this engine yet");
  }
  return types;
}

std::vector<engine::KVType> parse_kv_candidate_types(const std::string& list) {
  std::vector<engine::KVType> types;
  for (const auto& name : split_list(list, "--candidate-types")) {
    const auto t = engine::kv_type_from_name(name);
    if (!t)
      throw InputError("--candidate-types", std::nullopt,
                       "'" + name + "' is not a KV cache type (" + engine::kv_type_names() + ")");
    types.push_back(*t);
  }
  return types;
}

uint64_t kv_row_bytes(engine::KVType type, int64_t n_head_kv, int64_t head_dim) {
  const engine::LayerKVCache one_position(1, n_head_kv, head_dim, engine::LayerKVTypes{type, type});
  return one_position.k_row_bytes();
}

double kv_bits_per_value(engine::KVType type, int64_t n_head_kv, int64_t head_dim) {
  return 8.0 * static_cast<double>(kv_row_bytes(type, n_head_kv, head_dim)) / static_cast<double>(n_head_kv * head_dim);
}

std::vector<engine::KVType> sort_by_size(std::vector<engine::KVType> types, int64_t n_head_kv, int64_t head_dim) {
  std::vector<engine::KVType> unique;
  for (engine::KVType t : types)
    if (std::find(unique.begin(), unique.end(), t) == unique.end()) unique.push_back(t);
  std::stable_sort(unique.begin(), unique.end(), [&](engine::KVType a, engine::KVType b) {
    return kv_row_bytes(a, n_head_kv, head_dim) < kv_row_bytes(b, n_head_kv, head_dim);
  });
  return unique;
}

}  // namespace optiq::kv
