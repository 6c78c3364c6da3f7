#include <gtest/gtest.h>

#include "io/ggml_type.h"

namespace optiq {
namespace {

TEST(GgmlType, BitsPerWeightOfCommonTypes) {
  EXPECT_DOUBLE_EQ(ggml_bits_per_weight(GgmlType::F16), 16.0);
  EXPECT_DOUBLE_EQ(ggml_bits_per_weight(GgmlType::Q4_0), 4.5);
  EXPECT_DOUBLE_EQ(ggml_bits_per_weight(GgmlType::Q8_0), 8.5);
  EXPECT_DOUBLE_EQ(ggml_bits_per_weight(GgmlType::Q4_K), 4.5);
  EXPECT_DOUBLE_EQ(ggml_bits_per_weight(GgmlType::Q6_K), 6.5625);
  EXPECT_DOUBLE_EQ(ggml_bits_per_weight(GgmlType::IQ4_XS), 4.25);
  EXPECT_DOUBLE_EQ(ggml_bits_per_weight(GgmlType::Q2_K), 2.625);
  // Two f16 scales + 32 int8 (ggml-common.h); the PyPI gguf-py the oracle test uses is stale here.
  EXPECT_EQ(ggml_traits(GgmlType::Q8_1).block_bytes, 36u);
}

TEST(GgmlType, RetiredAndUnknownIdsAreRejected) {
  for (uint32_t id : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 43u, 1000u})
    EXPECT_FALSE(ggml_type_traits(id).has_value()) << id;
  EXPECT_TRUE(ggml_type_traits(30).has_value());
}

TEST(GgmlType, NamesRoundTrip) {
  for (uint32_t id = 0; id < 64; ++id)
    if (auto t = ggml_type_traits(id)) EXPECT_EQ(ggml_type_from_name(t->name), t->type);
  EXPECT_EQ(ggml_type_from_name("Q4_K"), GgmlType::Q4_K);
  EXPECT_EQ(ggml_type_from_name("nope"), std::nullopt);
}

TEST(GgmlType, RowBytesNeedWholeBlocks) {
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_K, 512), 288u);
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_K, 172), std::nullopt);
  EXPECT_EQ(ggml_row_bytes(GgmlType::F32, 172), 688u);
}

}  // namespace
}  // namespace optiq
