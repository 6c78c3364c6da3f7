// The decode latency model on synthetic data: the fit recovers known coefficients, stays
// non-negative, refuses too few runs; predictions add per-type costs; the calibration cache
// round-trips per key; the two-budget allocator meets both budgets and prefers the plain
// knapsack's optimum when it already does.
#include <gtest/gtest.h>

#include <random>

#include "alloc/two_budgets.h"
#include "eval/latency_model.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq {
namespace {

using eval::TypeBytes;

TEST(LatencyFit, RecoversTheCoefficientsOfExactData) {
  const double c0 = 2e-3, a8 = 0.3e-9, a4 = 0.5e-9, a16 = 0.2e-9;
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> mb(1e6, 50e6);
  std::vector<TypeBytes> runs;
  std::vector<double> seconds;
  for (int i = 0; i < 8; ++i) {
    TypeBytes b = {{GgmlType::Q8_0, mb(rng)}, {GgmlType::Q4_K, mb(rng)}, {GgmlType::F16, i % 2 ? mb(rng) : 0.0}};
    runs.push_back(b);
    seconds.push_back(c0 + a8 * b[GgmlType::Q8_0] + a4 * b[GgmlType::Q4_K] + a16 * b[GgmlType::F16]);
  }
  const eval::LatencyFit fit = eval::fit_latency(runs, seconds);
  EXPECT_NEAR(fit.overhead_seconds, c0, 1e-6 * c0);
  EXPECT_NEAR(fit.seconds_per_byte.at(GgmlType::Q8_0), a8, 1e-6 * a8);
  EXPECT_NEAR(fit.seconds_per_byte.at(GgmlType::Q4_K), a4, 1e-6 * a4);
  EXPECT_NEAR(fit.seconds_per_byte.at(GgmlType::F16), a16, 1e-6 * a16);
  // Prediction is the overhead plus each type's bytes times its cost.
  const TypeBytes mix = {{GgmlType::Q8_0, 10e6}, {GgmlType::Q4_K, 20e6}};
  EXPECT_NEAR(fit.predict_seconds(mix), c0 + a8 * 10e6 + a4 * 20e6, 1e-9);
  EXPECT_THROW(fit.predict_seconds({{GgmlType::Q2_K, 1e6}}), InputError);  // never calibrated
}

TEST(LatencyFit, NoisyDataFitsWithinTheNoiseAndStaysNonNegative) {
  std::mt19937 rng(3);
  std::normal_distribution<double> noise(0.0, 0.02);
  std::uniform_real_distribution<double> mb(1e6, 30e6);
  std::vector<TypeBytes> runs;
  std::vector<double> seconds;
  for (int i = 0; i < 20; ++i) {
    TypeBytes b = {{GgmlType::Q8_0, mb(rng)}, {GgmlType::Q5_0, mb(rng)}};
    runs.push_back(b);
    // Overhead 0: a noisy fit must not go negative to explain the noise.
    seconds.push_back((0.25e-9 * b[GgmlType::Q8_0] + 0.4e-9 * b[GgmlType::Q5_0]) * (1 + noise(rng)));
  }
  const eval::LatencyFit fit = eval::fit_latency(runs, seconds);
  EXPECT_GE(fit.overhead_seconds, 0.0);
  double worst = 0;
  for (size_t i = 0; i < runs.size(); ++i) worst = std::max(worst, std::abs(fit.predict_seconds(runs[i]) / seconds[i] - 1));
  EXPECT_LT(worst, 0.08);
  EXPECT_NEAR(fit.seconds_per_byte.at(GgmlType::Q5_0), 0.4e-9, 0.04e-9);
}

TEST(LatencyFit, RefusesFewerRunsThanUnknowns) {
  const std::vector<TypeBytes> runs = {{{GgmlType::Q8_0, 1e6}}, {{GgmlType::Q4_0, 1e6}}};
  EXPECT_THROW(eval::fit_latency(runs, {1e-3, 2e-3}), std::invalid_argument);  // 3 unknowns
  EXPECT_THROW(eval::fit_latency({{{GgmlType::Q8_0, 1e6}}, {{GgmlType::Q8_0, 2e6}}}, {1e-3, 0.0}), std::invalid_argument);
}

TEST(LatencyFit, BytesPerTokenCountRowsOrOneRowOfALookup) {
  // Q8_0: 34 bytes per 32 weights.
  EXPECT_DOUBLE_EQ(eval::weight_bytes_per_token(GgmlType::Q8_0, 64, 10, false), 10 * 2 * 34.0);
  EXPECT_DOUBLE_EQ(eval::weight_bytes_per_token(GgmlType::Q8_0, 64, 10, true), 2 * 34.0);
  EXPECT_DOUBLE_EQ(eval::weight_bytes_per_token(GgmlType::F32, 64, 10, false), 64 * 10 * 4.0);
}

TEST(LatencyCache, RoundTripsPerKeyAndKeepsOtherEntries) {
  test::ScratchDir dir;
  const auto cache = dir / "sub" / "latency.json";
  const eval::LatencyKey a{"CPU X", 1, "llama L5", 64}, b{"CPU X", 2, "llama L5", 64};
  EXPECT_FALSE(eval::load_latency_fit(cache, a));
  eval::LatencyFit fa;
  fa.overhead_seconds = 1e-3;
  fa.seconds_per_byte[GgmlType::Q4_K] = 3e-10;
  eval::save_latency_fit(cache, a, fa, {{"uniform Q4_K", {{GgmlType::Q4_K, 5e6}}, 2.5e-3}});
  eval::LatencyFit fb = fa;
  fb.overhead_seconds = 2e-3;
  eval::save_latency_fit(cache, b, fb, {});
  const auto ra = eval::load_latency_fit(cache, a), rb = eval::load_latency_fit(cache, b);
  ASSERT_TRUE(ra && rb);
  EXPECT_DOUBLE_EQ(ra->overhead_seconds, 1e-3);
  EXPECT_DOUBLE_EQ(rb->overhead_seconds, 2e-3);
  EXPECT_DOUBLE_EQ(ra->seconds_per_byte.at(GgmlType::Q4_K), 3e-10);
  EXPECT_FALSE(eval::load_latency_fit(cache, {"CPU Y", 1, "llama L5", 64}));
  test::write_text(cache, "[1, 2]");
  EXPECT_THROW(eval::load_latency_fit(cache, a), InputError);
}

// Three tensors, two candidates each: small-and-slow or large-and-fast, or the reverse.
std::vector<alloc::TensorChoices> toy(std::vector<std::vector<uint64_t>>& time) {
  std::vector<alloc::TensorChoices> t(3);
  t[0].candidates = {{GgmlType::Q4_K, 100, 1.0}, {GgmlType::Q8_0, 200, 0.1}};
  t[1].candidates = {{GgmlType::Q4_K, 100, 2.0}, {GgmlType::Q8_0, 200, 0.2}};
  t[2].candidates = {{GgmlType::Q4_K, 100, 0.5}, {GgmlType::Q8_0, 200, 0.4}};
  time = {{10, 30}, {10, 5}, {10, 30}};  // tensor 1 is faster at Q8_0 (as a kernel might be)
  return t;
}

TEST(TwoBudgets, TheSizeOptimumIsKeptWhenItsTimeFits) {
  std::vector<std::vector<uint64_t>> time;
  const auto t = toy(time);
  const auto r = alloc::allocate_two_budgets(t, time, 500, 1000);
  EXPECT_EQ(r.solved.best.choice, (std::vector<size_t>{1, 1, 0}));
  EXPECT_EQ(r.bytes, 500u);
  EXPECT_EQ(r.time, 45u);
  EXPECT_NE(r.method.find("size knapsack"), std::string::npos);
}

TEST(TwoBudgets, ATightTimeBudgetChangesTheChoiceAndBothBudgetsHold) {
  std::vector<std::vector<uint64_t>> time;
  const auto t = toy(time);
  // Size alone picks {1,1,0} (time 30+5+10 = 45); a budget of 30 forces tensor 0 down.
  const auto r = alloc::allocate_two_budgets(t, time, 500, 30);
  EXPECT_LE(r.bytes, 500u);
  EXPECT_LE(r.time, 30u);
  EXPECT_EQ(r.solved.best.choice, (std::vector<size_t>{0, 1, 0}));
  EXPECT_THROW(alloc::allocate_two_budgets(t, time, 500, 20), InputError);  // faster than anything
}

TEST(TwoBudgets, WhenNeitherAloneFitsTheLagrangianFindsAnAllocationMeetingBoth) {
  // Four tensors where the size optimum is slow and the time optimum is large.
  std::vector<alloc::TensorChoices> t(4);
  std::vector<std::vector<uint64_t>> time(4);
  for (int i = 0; i < 4; ++i) {
    t[i].candidates = {{GgmlType::Q4_K, 100, 1.0 + i}, {GgmlType::Q6_K, 150, 0.5 + i}, {GgmlType::Q8_0, 200, 0.1 + i}};
    time[i] = i % 2 ? std::vector<uint64_t>{10, 20, 12} : std::vector<uint64_t>{10, 12, 20};
  }
  const auto r = alloc::allocate_two_budgets(t, time, 650, 56);
  EXPECT_NE(r.method.find("Lagrangian"), std::string::npos) << r.method;
  EXPECT_LE(r.bytes, 650u);
  EXPECT_LE(r.time, 56u);
  // Brute force: the least cost meeting both.
  double best = 1e9;
  for (int c = 0; c < 81; ++c) {
    uint64_t bytes = 0, tm = 0;
    double cost = 0;
    for (int i = 0, x = c; i < 4; ++i, x /= 3) {
      bytes += t[i].candidates[x % 3].bytes, tm += time[i][x % 3], cost += t[i].candidates[x % 3].cost;
    }
    if (bytes <= 650 && tm <= 56) best = std::min(best, cost);
  }
  EXPECT_NEAR(r.solved.best.cost, best, 0.5) << r.method;  // a heuristic: near the optimum
}

}  // namespace
}  // namespace optiq
