// Candidate types per tensor (bits → types, llama.cpp's per-shape fallback, --protect floors),
// size budgets, and the rank correlation used to judge the fast proxy.
#include <gtest/gtest.h>

#include <cmath>

#include "alloc/budget.h"
#include "sensitivity/candidates.h"
#include "sensitivity/proxy.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq::sensitivity {
namespace {

const TensorCandidates& find(const std::vector<TensorCandidates>& all, const std::string& name) {
  for (const auto& c : all)
    if (c.source->name == name) return c;
  throw std::runtime_error("no candidates for " + name);
}

TEST(Candidates, BitsMapToKQuantsAndQ8_0) {
  EXPECT_EQ(candidate_types_from_bits({4, 8}, "x"), (std::vector<GgmlType>{GgmlType::Q4_K, GgmlType::Q8_0}));
  EXPECT_EQ(candidate_types_from_bits({3, 16}, "x"), (std::vector<GgmlType>{GgmlType::Q3_K, GgmlType::F16}));
  EXPECT_THROW(candidate_types_from_bits({7}, "x"), InputError);
  EXPECT_THROW(candidate_types_from_bits({}, "x"), InputError);
  EXPECT_EQ(parse_candidate_types("Q3_K,q8_0", "x"), (std::vector<GgmlType>{GgmlType::Q3_K, GgmlType::Q8_0}));
  EXPECT_THROW(parse_candidate_types("Q3_K,Q9", "x"), InputError);
  EXPECT_DOUBLE_EQ(type_bpw(GgmlType::Q4_K), 4.5);
  EXPECT_DOUBLE_EQ(type_bpw(GgmlType::Q8_0), 8.5);
}

TEST(Candidates, RowsThatDoNotFitFallBackLikeLlamaCpp) {
  const ModelSource src = open_model_source(test::stories260k());
  const auto all = plan_candidates(src, {GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0}, {});
  // 64-wide rows: Q4_K → Q5_0, Q6_K → Q8_0 (deduplicated with the Q8_0 asked for).
  EXPECT_EQ(find(all, "blk.0.attn_q.weight").types, (std::vector<GgmlType>{GgmlType::Q5_0, GgmlType::Q8_0}));
  // 172-wide rows hold no 32-blocks: everything falls back to F16.
  EXPECT_EQ(find(all, "blk.0.ffn_down.weight").types, (std::vector<GgmlType>{GgmlType::F16}));
  // Norms are never candidates; the token embedding is.
  for (const auto& c : all) EXPECT_EQ(c.source->name.find("norm"), std::string::npos) << c.source->name;
  EXPECT_NO_THROW(find(all, "token_embd.weight"));
}

TEST(Candidates, ProtectRaisesTheFloor) {
  const ModelSource src = open_model_source(test::stories260k());
  const auto all = plan_candidates(src, {GgmlType::Q4_K, GgmlType::Q8_0},
                                   {parse_protect_rule("attn_v=Q8_0"), parse_protect_rule("token_embd=F16")});
  EXPECT_EQ(find(all, "blk.3.attn_v.weight").types, (std::vector<GgmlType>{GgmlType::Q8_0}));
  EXPECT_EQ(find(all, "token_embd.weight").types, (std::vector<GgmlType>{GgmlType::F16}));
  EXPECT_EQ(find(all, "blk.3.attn_k.weight").types.size(), 2u);
  EXPECT_THROW(parse_protect_rule("attn_v"), InputError);
  EXPECT_THROW(parse_protect_rule("attn_v=Q9"), InputError);
  EXPECT_THROW(parse_protect_rule("(=Q8_0"), InputError);
}

TEST(Candidates, AQuantizedSourceOffersItsOwnType) {
  test::ScratchDir dir;
  const auto q8 = dir / "q8_0.gguf";
  const auto made = test::run_optiq("quantize " + test::stories260k().string() + " -o " + q8.string() + " --type Q8_0");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const ModelSource src = open_model_source(q8);
  ASSERT_EQ(src.find("blk.0.attn_q.weight")->type, GgmlType::Q8_0);
  const auto kept = plan_candidates(src, {GgmlType::Q4_K}, {});
  EXPECT_EQ(find(kept, "blk.0.attn_q.weight").types, (std::vector<GgmlType>{GgmlType::Q5_0, GgmlType::Q8_0}));
  // ffn_down's 172-wide rows are stored as F16, which is not a quantized type: nothing added.
  EXPECT_EQ(find(kept, "blk.0.ffn_down.weight").types, (std::vector<GgmlType>{GgmlType::F16}));
  const auto requested_only = plan_candidates(src, {GgmlType::Q4_K}, {}, /*keep_stored=*/false);
  EXPECT_EQ(find(requested_only, "blk.0.attn_q.weight").types, (std::vector<GgmlType>{GgmlType::Q5_0}));
  // A floor above the stored type removes it like any other candidate.
  const auto floored = plan_candidates(src, {GgmlType::Q4_K}, {parse_protect_rule("attn_q=F16")});
  EXPECT_EQ(find(floored, "blk.0.attn_q.weight").types, (std::vector<GgmlType>{GgmlType::F16}));
}

TEST(Budget, SizesWithUnits) {
  EXPECT_EQ(alloc::parse_byte_size("300MB").value(), 300'000'000u);
  EXPECT_EQ(alloc::parse_byte_size("300 mb").value(), 300'000'000u);
  EXPECT_EQ(alloc::parse_byte_size("1.5GiB").value(), 1'610'612'736u);
  EXPECT_EQ(alloc::parse_byte_size("123456").value(), 123456u);
  EXPECT_FALSE(alloc::parse_byte_size("Q4_K_M"));
  EXPECT_FALSE(alloc::parse_byte_size("-3MB"));
  EXPECT_FALSE(alloc::parse_byte_size("3 parsecs"));
  EXPECT_EQ(alloc::bytes_for_bpw(4.5, 1000), 562u);
  EXPECT_DOUBLE_EQ(alloc::bits_per_weight(562, 1000), 4.496);
}

TEST(Spearman, RanksWithTies) {
  EXPECT_DOUBLE_EQ(spearman_correlation({1, 2, 3, 4}, {10, 20, 30, 40}), 1.0);
  EXPECT_DOUBLE_EQ(spearman_correlation({1, 2, 3, 4}, {4, 3, 2, 1}), -1.0);
  // x ranks 1..5, y ranks (1, 2.5, 2.5, 4, 5): rho = 9.5 / sqrt(10 * 9.5).
  EXPECT_NEAR(spearman_correlation({1, 2, 3, 4, 5}, {1, 7, 7, 8, 9}), 9.5 / std::sqrt(10 * 9.5), 1e-12);
  EXPECT_TRUE(std::isnan(spearman_correlation({1, 1, 1}, {1, 2, 3})));
}

}  // namespace
}  // namespace optiq::sensitivity
