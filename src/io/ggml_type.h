// Every tensor type id a GGUF file can carry, with the block geometry ggml gives it. Knowing
// the geometry of all of them lets optiq open, validate and copy any llama.cpp file, including
// types it cannot compute with yet.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace optiq {

// Values are the on-disk ids (ggml.h). Gaps are ids ggml retired; files using them are rejected.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39, NVFP4 = 40, Q1_0 = 41, Q2_0 = 42,
};

struct GgmlTypeTraits {
  GgmlType type;
  std::string_view name;  // as ggml and llama.cpp print it, e.g. "q4_K"
  uint32_t block_elems;   // weights per block (1 for plain scalar types)
  uint32_t block_bytes;   // bytes per block
};

// nullopt for an id that is not a ggml type (or was retired).
std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t id);
const GgmlTypeTraits& ggml_traits(GgmlType type);  // for ids known to be valid

inline std::string_view ggml_type_name(GgmlType type) { return ggml_traits(type).name; }
// Case-insensitive lookup by name ("f16", "Q4_K", "bf16"); nullopt if unknown.
std::optional<GgmlType> ggml_type_from_name(std::string_view name);

// Bytes of a row of `n` elements; nullopt if n is not a multiple of the block size.
std::optional<uint64_t> ggml_row_bytes(GgmlType type, uint64_t n);

// Bits per weight, e.g. 4.5 for Q4_0 (18 bytes / 32 weights).
inline double ggml_bits_per_weight(GgmlType type) {
  const auto& t = ggml_traits(type);
  return 8.0 * t.block_bytes / t.block_elems;
}

}  // namespace optiq
