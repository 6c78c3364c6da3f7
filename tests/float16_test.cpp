#include <gtest/gtest.h>
#include <immintrin.h>

#include <cmath>
#include <random>

#include "quant/float16.h"

namespace optiq {
namespace {

// The CPU's own F16C conversion is an independent reference for the scalar code.
__attribute__((target("f16c"))) uint16_t hw_f32_to_f16(float f) {
  return static_cast<uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}
__attribute__((target("f16c"))) float hw_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
bool have_f16c() { return __builtin_cpu_supports("f16c"); }

TEST(Float16, EveryHalfDecodesLikeHardware) {
  if (!have_f16c()) GTEST_SKIP() << "CPU has no F16C to compare against";
  for (uint32_t h = 0; h < 65536; ++h) {
    const float ours = f16_to_f32(static_cast<uint16_t>(h));
    const float hw = hw_f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(hw)) {
      EXPECT_TRUE(std::isnan(ours)) << h;
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(ours), std::bit_cast<uint32_t>(hw)) << "half " << h;
    }
  }
}

TEST(Float16, EncodingRoundsLikeHardware) {
  if (!have_f16c()) GTEST_SKIP() << "CPU has no F16C to compare against";
  std::mt19937 rng(42);
  std::vector<float> values = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e-8f, 5.96e-8f, 2.98e-8f,
                               2.9802322e-8f, 6.1035156e-5f, 6.1e-5f, INFINITY, -INFINITY, 1.0f + 0x1p-11f,
                               1.0f + 3 * 0x1p-11f, 1e10f, -3.4e38f};
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 2'000'000; ++i) {
    float f = std::bit_cast<float>(bits(rng));
    if (!std::isnan(f)) values.push_back(f);
  }
  for (int e = -30; e <= 17; ++e)  // dense sampling around every half exponent
    for (int k = 0; k < 2000; ++k) values.push_back(std::ldexp(1.0f + k / 2000.0f, e));
  for (float f : values) ASSERT_EQ(f32_to_f16(f), hw_f32_to_f16(f)) << "f32 " << f;
}

TEST(Float16, BulkPathsAgreeWithScalar) {
  std::mt19937 rng(7);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  std::vector<float> src(1001);
  for (auto& x : src) x = dist(rng);
  std::vector<uint16_t> h(src.size());
  f32_to_f16_n(src.data(), h.data(), src.size());
  std::vector<float> back(src.size());
  f16_to_f32_n(h.data(), back.data(), h.size());
  for (size_t i = 0; i < src.size(); ++i) {
    EXPECT_EQ(h[i], f32_to_f16(src[i]));
    EXPECT_EQ(back[i], f16_to_f32(h[i]));
  }
}

TEST(BFloat16, RoundsToNearestEven) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even mantissa (1.0).
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f), 0x3f80);
  // 1 + 3·2^-8 is halfway too, and rounds up to the even neighbour.
  EXPECT_EQ(f32_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);
  EXPECT_EQ(f32_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_EQ(f32_to_bf16(INFINITY), 0x7f80);
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (!std::isnan(f)) ASSERT_EQ(f32_to_bf16(f), h);  // every bf16 survives the round trip
  }
}

}  // namespace
}  // namespace optiq
