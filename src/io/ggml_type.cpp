#include "io/ggml_type.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <stdexcept>
#include <string>

namespace optiq {
namespace {

constexpr uint32_t QK_K = 256;

// Block geometry from ggml-common.h: e.g. Q4_K = d, dmin (2 × f16) + 12 bytes of 6-bit scales
// + 128 bytes of 4-bit quants per 256 weights = 144 bytes (4.5 bpw).
constexpr std::array<GgmlTypeTraits, 35> kTraits{{
    {GgmlType::F32, "f32", 1, 4},
    {GgmlType::F16, "f16", 1, 2},
    {GgmlType::Q4_0, "q4_0", 32, 2 + 16},
    {GgmlType::Q4_1, "q4_1", 32, 2 + 2 + 16},
    {GgmlType::Q5_0, "q5_0", 32, 2 + 4 + 16},
    {GgmlType::Q5_1, "q5_1", 32, 2 + 2 + 4 + 16},
    {GgmlType::Q8_0, "q8_0", 32, 2 + 32},
    {GgmlType::Q8_1, "q8_1", 32, 2 + 2 + 32},
    {GgmlType::Q2_K, "q2_K", QK_K, 2 + 2 + QK_K / 16 + QK_K / 4},
    {GgmlType::Q3_K, "q3_K", QK_K, 2 + QK_K / 4 + QK_K / 8 + 12},
    {GgmlType::Q4_K, "q4_K", QK_K, 2 + 2 + QK_K / 2 + 12},
    {GgmlType::Q5_K, "q5_K", QK_K, 2 + 2 + QK_K / 2 + QK_K / 8 + 12},
    {GgmlType::Q6_K, "q6_K", QK_K, 2 + QK_K / 2 + QK_K / 4 + QK_K / 16},
    {GgmlType::Q8_K, "q8_K", QK_K, 4 + QK_K + QK_K / 8},
    {GgmlType::IQ2_XXS, "iq2_xxs", QK_K, 2 + QK_K / 4},
    {GgmlType::IQ2_XS, "iq2_xs", QK_K, 2 + QK_K / 4 + QK_K / 32},
    {GgmlType::IQ3_XXS, "iq3_xxs", QK_K, 2 + QK_K / 4 + QK_K / 8},
    {GgmlType::IQ1_S, "iq1_s", QK_K, 2 + QK_K / 8 + QK_K / 16},
    {GgmlType::IQ4_NL, "iq4_nl", 32, 2 + 16},
    {GgmlType::IQ3_S, "iq3_s", QK_K, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4},
    {GgmlType::IQ2_S, "iq2_s", QK_K, 2 + QK_K / 4 + QK_K / 16},
    {GgmlType::IQ4_XS, "iq4_xs", QK_K, 2 + 2 + QK_K / 2 + QK_K / 64},
    {GgmlType::I8, "i8", 1, 1},
    {GgmlType::I16, "i16", 1, 2},
    {GgmlType::I32, "i32", 1, 4},
    {GgmlType::I64, "i64", 1, 8},
    {GgmlType::F64, "f64", 1, 8},
    {GgmlType::IQ1_M, "iq1_m", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
    {GgmlType::BF16, "bf16", 1, 2},
    {GgmlType::TQ1_0, "tq1_0", QK_K, 2 + 4 * 13},
    {GgmlType::TQ2_0, "tq2_0", QK_K, 2 + 64},
    {GgmlType::MXFP4, "mxfp4", 32, 1 + 16},
    {GgmlType::NVFP4, "nvfp4", 64, 4 + 32},
    {GgmlType::Q1_0, "q1_0", 128, 2 + 16},
    {GgmlType::Q2_0, "q2_0", 64, 2 + 16},
}};
constexpr size_t kNumTypes = kTraits.size();

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

}  // namespace

std::optional<GgmlTypeTraits> ggml_type_traits(uint32_t id) {
  for (size_t i = 0; i < kNumTypes; ++i)
    if (static_cast<uint32_t>(kTraits[i].type) == id) return kTraits[i];
  return std::nullopt;
}

const GgmlTypeTraits& ggml_traits(GgmlType type) {
  for (size_t i = 0; i < kNumTypes; ++i)
    if (kTraits[i].type == type) return kTraits[i];
  throw std::logic_error("ggml_traits: invalid GgmlType " +
                         std::to_string(static_cast<uint32_t>(type)));
}

std::optional<GgmlType> ggml_type_from_name(std::string_view name) {
  for (size_t i = 0; i < kNumTypes; ++i)
    if (iequals(kTraits[i].name, name)) return kTraits[i].type;
  return std::nullopt;
}

std::optional<uint64_t> ggml_row_bytes(GgmlType type, uint64_t n) {
  const auto& t = ggml_traits(type);
  if (n % t.block_elems != 0) return std::nullopt;
  return n / t.block_elems * t.block_bytes;
}

}  // namespace optiq
