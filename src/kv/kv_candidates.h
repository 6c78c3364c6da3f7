// The KV cache types `optiq kv-cache` chooses among, and what each costs per cached value.
// Candidates are named by bits within kinds ("--kinds affine,turbo --candidate-bits 4,8") or
// by type ("--candidate-types q8_0,q4_0,iq4_nl"); every name resolves through
// engine::kv_type_from_name, so a type the engine does not know is a clear error, not a guess.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/kv_cache.h"

namespace optiq::kv {

// Bits → type per kind: affine 16 f16, 8 q8_0, 5 q5_0, 4 q4_0; turbo 4 tq4, 3 tq3, 2 tq2.
// Every kind that has a type for a bit count contributes it. Throws InputError naming
// --candidate-bits or --kinds for an unknown kind, bits no kind offers, or a type name the
// engine does not know (e.g. turbo types in a build without them).
std::vector<engine::KVType> kv_candidates_from_bits(const std::vector<int>& bits, const std::vector<std::string>& kinds);

// "q8_0,q4_0,iq4_nl" → types; throws InputError naming --candidate-types for an unknown name.
std::vector<engine::KVType> parse_kv_candidate_types(const std::string& list);

// Bytes one position of one layer's K (or V) takes in `type`: a row of n_head_kv * head_dim
// values. Throws InputError when the type's blocks do not fit head_dim.
uint64_t kv_row_bytes(engine::KVType type, int64_t n_head_kv, int64_t head_dim);

// Bits per cached value of `type` for this head layout (f16 16, q8_0 8.5, q4_0 4.5).
double kv_bits_per_value(engine::KVType type, int64_t n_head_kv, int64_t head_dim);

// The types deduplicated and sorted by bytes per row, ascending (ties keep their order).
std::vector<engine::KVType> sort_by_size(std::vector<engine::KVType> types, int64_t n_head_kv, int64_t head_dim);


}  // namespace optiq::kv
