// Rank allocation for `optiq lora train --rank-scaling` (src/train/rank_rule.h): uniform rank
// everywhere, ranks in proportion to bits (8 bits twice 4), the total within one rank-step below
// uniform's parameter count, the caps, determinism, refused signals; and the signal readers on
// small files written here (a model's stored types, optiq-report.json, sensitivity.jsonl).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "test_util.h"
#include "tiny_llama.h"
#include "train/rank_rule.h"
#include "util/error.h"

namespace optiq {
namespace {

using train::RankScaling;
using train::RankTarget;

// Adapter parameters of `ranks` on `targets`: Σ rank·(n_in + n_out).
int64_t adapter_params(const std::vector<RankTarget>& targets, const std::vector<int64_t>& ranks) {
  int64_t n = 0;
  for (size_t i = 0; i < targets.size(); ++i) n += ranks[i] * (targets[i].n_in + targets[i].n_out);
  return n;
}

// The seven projections of `layers` blocks of a small model (width 256, feed-forward 640, k/v
// 64 wide), each with `signal(i)`.
template <class Signal>
std::vector<RankTarget> block_targets(int layers, Signal signal) {
  struct Shape {
    const char* name;
    int64_t n_in, n_out;
  };
  const Shape shapes[] = {{"attn_q", 256, 256},   {"attn_k", 256, 64},  {"attn_v", 256, 64}, {"attn_output", 256, 256},
                          {"ffn_gate", 256, 640}, {"ffn_up", 256, 640}, {"ffn_down", 640, 256}};
  std::vector<RankTarget> out;
  for (int l = 0; l < layers; ++l)
    for (const Shape& s : shapes) {
      const std::string name = "blk." + std::to_string(l) + "." + s.name + ".weight";
      out.push_back({name, s.n_in, s.n_out, signal(out.size())});
    }
  return out;
}

TEST(RankRule, NamesParseBack) {
  for (const RankScaling rule : {RankScaling::Uniform, RankScaling::ByBits, RankScaling::ByKl})
    EXPECT_EQ(train::parse_rank_scaling(train::rank_scaling_name(rule)), rule);
  EXPECT_EQ(train::rank_scaling_name(RankScaling::ByKl), "by_kl");
  EXPECT_FALSE(train::parse_rank_scaling("kl"));
  EXPECT_FALSE(train::parse_rank_scaling("Uniform"));
}

TEST(RankRule, UniformAndEqualSignalsGiveTheBaseRank) {
  const std::vector<RankTarget> targets = block_targets(3, [](size_t i) { return i % 3 ? 0.0 : 5.0; });
  EXPECT_EQ(train::allocate_ranks(targets, 16, RankScaling::Uniform), std::vector<int64_t>(targets.size(), 16));
  const std::vector<RankTarget> equal = block_targets(3, [](size_t) { return 4.5; });
  EXPECT_EQ(train::allocate_ranks(equal, 16, RankScaling::ByBits), std::vector<int64_t>(equal.size(), 16));
  EXPECT_EQ(train::allocate_ranks(equal, 16, RankScaling::ByKl), std::vector<int64_t>(equal.size(), 16));
  EXPECT_TRUE(train::allocate_ranks({}, 16, RankScaling::ByKl).empty());
  // Uniform never exceeds a dimension.
  const std::vector<RankTarget> narrow = {{"blk.0.attn_k.weight", 256, 8, 0}, {"blk.0.attn_q.weight", 256, 256, 0}};
  EXPECT_EQ(train::allocate_ranks(narrow, 16, RankScaling::Uniform), (std::vector<int64_t>{8, 16}));
}

TEST(RankRule, ByBitsGivesEightBitsTwiceTheRankOfFour) {
  const std::vector<RankTarget> targets = block_targets(4, [](size_t i) { return i % 2 ? 8.0 : 4.0; });
  for (const int64_t base : {8, 16, 32}) {
    const std::vector<int64_t> ranks = train::allocate_ranks(targets, base, RankScaling::ByBits);
    // Same-shaped neighbours (k beside v, gate beside up), one at 8 bits and one at 4: rounding
    // each rank and the remainder's +1 keep the larger within 2 of twice the smaller.
    for (size_t i = 0; i + 1 < targets.size(); ++i) {
      if (targets[i].n_in != targets[i + 1].n_in || targets[i].n_out != targets[i + 1].n_out) continue;
      const int64_t hi = targets[i].signal > 4 ? ranks[i] : ranks[i + 1], lo = targets[i].signal > 4 ? ranks[i + 1] : ranks[i];
      EXPECT_LE(std::abs(hi - 2 * lo), 2) << targets[i].name << " base " << base << ": " << hi << " vs " << lo;
    }
    const int64_t budget = adapter_params(targets, std::vector<int64_t>(targets.size(), base));
    EXPECT_LE(adapter_params(targets, ranks), budget);
    EXPECT_GT(adapter_params(targets, ranks), budget - (640 + 256));
  }
}

TEST(RankRule, StaysWithinOneRankStepOfTheBudget) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> log_kl(-6.0, -0.5);
  for (int trial = 0; trial < 20; ++trial) {
    const std::vector<RankTarget> targets = block_targets(1 + trial % 5, [&](size_t) { return std::pow(10.0, log_kl(rng)); });
    const int64_t base = 1 + trial * 3;
    for (const RankScaling rule : {RankScaling::ByKl, RankScaling::ByBits}) {
      const std::vector<int64_t> ranks = train::allocate_ranks(targets, base, rule);
      ASSERT_EQ(ranks.size(), targets.size());
      const int64_t budget = adapter_params(targets, std::vector<int64_t>(targets.size(), base));
      EXPECT_LE(adapter_params(targets, ranks), budget) << "trial " << trial;
      EXPECT_GT(adapter_params(targets, ranks), budget - (640 + 256)) << "trial " << trial;
      for (size_t i = 0; i < ranks.size(); ++i) {
        EXPECT_GE(ranks[i], 1);
        EXPECT_LE(ranks[i], std::min({4 * base, targets[i].n_in, targets[i].n_out}));
      }
    }
  }
}

TEST(RankRule, ClampsToFourTimesTheBaseAndToOne) {
  // One tensor a million times as sensitive as the others: its sqrt weight is a thousand times
  // theirs, so it takes its cap (4 × 8 = 32, not its 64 columns) and the rest share the remainder.
  std::vector<RankTarget> targets = block_targets(2, [](size_t i) { return i == 0 ? 1.0 : 1e-6; });
  targets[0].n_out = 64;
  const std::vector<int64_t> ranks = train::allocate_ranks(targets, 8, RankScaling::ByKl);
  EXPECT_EQ(ranks[0], 32);
  for (size_t i = 1; i < ranks.size(); ++i) EXPECT_GE(ranks[i], 6) << targets[i].name;
  // The other way round: the insensitive one gets rank 1, the rest share its parameters.
  targets = block_targets(2, [](size_t i) { return i == 3 ? 1e-12 : 1e-2; });
  const std::vector<int64_t> low = train::allocate_ranks(targets, 8, RankScaling::ByKl);
  EXPECT_EQ(low[3], 1);
  for (size_t i = 0; i < low.size(); ++i) {
    if (i != 3) {
      EXPECT_GE(low[i], 8) << targets[i].name;
    }
  }
  // A tensor narrower than the base rank is capped at its width.
  const std::vector<RankTarget> narrow = {{"blk.0.attn_k.weight", 256, 4, 8.0}, {"blk.0.attn_q.weight", 256, 256, 8.0}};
  EXPECT_EQ(train::allocate_ranks(narrow, 16, RankScaling::ByBits)[0], 4);
}

TEST(RankRule, SameTargetsSameRanks) {
  const std::vector<RankTarget> targets = block_targets(3, [](size_t i) { return 1e-4 * static_cast<double>(i % 5 + 1); });
  const std::vector<int64_t> first = train::allocate_ranks(targets, 12, RankScaling::ByKl);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(train::allocate_ranks(targets, 12, RankScaling::ByKl), first);
  EXPECT_NE(first, std::vector<int64_t>(targets.size(), 12)) << "different KLs should give different ranks";
}

TEST(RankRule, RefusesUnusableSignals) {
  for (const double bad : {0.0, -1.0, std::nan(""), std::numeric_limits<double>::infinity()}) {
    std::vector<RankTarget> targets = block_targets(1, [](size_t) { return 0.01; });
    targets[2].signal = bad;
    try {
      train::allocate_ranks(targets, 8, RankScaling::ByKl);
      ADD_FAILURE() << "signal " << bad << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("blk.0.attn_v.weight: by_kl signal"), std::string::npos) << e.what();
    }
    EXPECT_NO_THROW(train::allocate_ranks(targets, 8, RankScaling::Uniform));
  }
  EXPECT_THROW(train::allocate_ranks(block_targets(1, [](size_t) { return 4.0; }), 0, RankScaling::ByBits),
               std::invalid_argument);
  EXPECT_THROW(train::allocate_ranks(std::vector<RankTarget>{{"blk.0.attn_q.weight", 0, 8, 4.0}}, 8, RankScaling::ByBits),
               std::invalid_argument);
}

TEST(RankRule, BitsOfAModelAndOfAReport) {
  const std::map<std::string, double> stored = train::bits_per_weight_of(test::tiny_llama({.weight_type = GgmlType::Q8_0}));
  EXPECT_EQ(stored.size(), 21u);  // 3 blocks × 7 projections
  EXPECT_EQ(stored.at("blk.2.ffn_down.weight"), 8.5);
  EXPECT_EQ(train::bits_per_weight_of(test::tiny_llama({})).at("blk.0.attn_q.weight"), 32.0);

  const test::ScratchDir dir;
  test::write_text(dir / "optiq-report.json", R"({"model": "m", "tensors": [
    {"name": "blk.0.attn_q.weight", "source_type": "bf16", "kl": {"q4_K": 0.01}, "chosen": "q4_K"},
    {"name": "blk.0.ffn_down.weight", "chosen": "q8_0"},
    {"name": "token_embd.weight", "chosen": "q2_K"}]})");
  const std::map<std::string, double> bits = train::bits_from_report(dir / "optiq-report.json");
  EXPECT_EQ(bits, (std::map<std::string, double>{
                      {"blk.0.attn_q.weight", 4.5}, {"blk.0.ffn_down.weight", 8.5}, {"token_embd.weight", 2.625}}));
  const auto refused = [&](const std::string& text, const std::string& expect) {
    test::write_text(dir / "bad.json", text);
    try {
      train::bits_from_report(dir / "bad.json");
      ADD_FAILURE() << "accepted, expected: " << expect;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find((dir / "bad.json").string() + ": " + expect), std::string::npos) << e.what();
    }
  };
  refused(R"({"model": "m"})", "is not an optiq-report.json (no tensors list)");
  refused(R"({"tensors": [{"name": "blk.0.attn_q.weight"}]})", "a tensors entry without a name and a chosen type");
  refused(R"({"tensors": [{"name": "blk.0.attn_q.weight", "chosen": "q9_X"}]})", "tensor blk.0.attn_q.weight: unknown type \"q9_X\"");
  refused("{", "offset");
  EXPECT_THROW(train::bits_from_report(dir / "missing.json"), InputError);
}

// A convert folder's sensitivity.jsonl: the header, then one line a measurement.
void write_sensitivity(const std::filesystem::path& dir, const std::vector<std::tuple<std::string, std::string, double>>& kl) {
  std::string text = R"({"format":"optiq-sensitivity","version":2,"model":"abc"})" "\n";
  for (const auto& [tensor, type, value] : kl)
    text += nlohmann::json{{"tensor", tensor}, {"type", type}, {"kl", value}, {"seconds", 0.5}}.dump() + "\n";
  test::write_text(dir / "sensitivity.jsonl", text);
}

TEST(RankRule, KlFromAConvertFolder) {
  const test::ScratchDir dir;
  write_sensitivity(dir.path(), {{"blk.0.attn_q.weight", "q4_K", 0.02},
                                 {"blk.0.attn_q.weight", "q8_0", 0.001},
                                 {"blk.0.attn_q.weight", "q3_K", 0.08},
                                 {"blk.0.attn_k.weight", "q4_K", 0.03},
                                 {"blk.0.attn_k.weight", "q2_K", 0.5},
                                 {"blk.0.attn_v.weight", "q4_0", 0.04},
                                 {"blk.0.attn_v.weight", "iq4_nl", 0.06},
                                 {"blk.0.attn_v.weight", "q8_0", 0.002},
                                 {"blk.0.ffn_up.weight", "q8_0", 0.0},
                                 {"blk.0.ffn_up.weight", "f16", 0.0}});
  // No report: each tensor's lowest-bits candidate (q4_0 and iq4_nl are both 4.5 bits: the larger
  // KL); ffn_up measured 0 is raised to the smallest positive KL taken, 0.06.
  const std::map<std::string, double> lowest = {
      {"blk.0.attn_q.weight", 0.08}, {"blk.0.attn_k.weight", 0.5}, {"blk.0.attn_v.weight", 0.06}, {"blk.0.ffn_up.weight", 0.06}};
  EXPECT_EQ(train::kl_from_convert_dir(dir.path()), lowest);
  // With the report: the plan's type where it was measured (q's q4_K, v's q8_0), the lowest bits
  // where it was not (k kept at bf16, which was no candidate); the floor is now 0.002.
  test::write_text(dir / "optiq-report.json", R"({"tensors": [
    {"name": "blk.0.attn_q.weight", "chosen": "q4_K"}, {"name": "blk.0.attn_k.weight", "chosen": "bf16"},
    {"name": "blk.0.attn_v.weight", "chosen": "q8_0"}]})");
  EXPECT_EQ(train::kl_from_convert_dir(dir.path()), (std::map<std::string, double>{{"blk.0.attn_q.weight", 0.02},
                                                                                   {"blk.0.attn_k.weight", 0.5},
                                                                                   {"blk.0.attn_v.weight", 0.002},
                                                                                   {"blk.0.ffn_up.weight", 0.002}}));

  const auto refused = [&](const std::string& expect) {
    try {
      train::kl_from_convert_dir(dir.path());
      ADD_FAILURE() << "accepted, expected: " << expect;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  };
  test::write_text(dir / "optiq-report.json", R"({"tensors": [{"name": "blk.1.attn_q.weight", "chosen": "q4_K"}]})");
  refused((dir / "sensitivity.jsonl").string() + ": has no measurement of blk.1.attn_q.weight, which " +
          (dir / "optiq-report.json").string() + " lists");
  std::filesystem::remove(dir / "optiq-report.json");
  write_sensitivity(dir.path(), {{"blk.0.attn_q.weight", "q4_K", 0.0}});
  refused("holds no positive KL");
  test::write_text(dir / "sensitivity.jsonl", R"({"format":"optiq-kv-sensitivity"})" "\n");
  refused("has no optiq-sensitivity header line: not a convert checkpoint");
  std::filesystem::remove(dir / "sensitivity.jsonl");
  refused((dir / "sensitivity.jsonl").string() + ": missing");
}

}  // namespace
}  // namespace optiq
