// The allocation solvers against exhaustive search on instances small enough to enumerate.
#include <gtest/gtest.h>

#include <random>

#include "alloc/knapsack.h"
#include "util/error.h"

namespace optiq::alloc {
namespace {

// Least cost over every assignment that fits, by enumeration; +inf when none fits.
double brute_force(const std::vector<TensorChoices>& ts, uint64_t budget) {
  double best = std::numeric_limits<double>::infinity();
  std::vector<size_t> idx(ts.size(), 0);
  for (;;) {
    uint64_t bytes = 0;
    double cost = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
      bytes += ts[i].candidates[idx[i]].bytes;
      cost += ts[i].candidates[idx[i]].cost;
    }
    if (bytes <= budget) best = std::min(best, cost);
    size_t i = 0;
    while (i < ts.size() && ++idx[i] == ts[i].candidates.size()) idx[i++] = 0;
    if (i == ts.size()) return best;
  }
}

// Random instances shaped like quantization choices: more bytes usually (not always) cost less.
std::vector<TensorChoices> random_instance(std::mt19937& rng, size_t n_tensors, size_t n_cands) {
  std::uniform_int_distribution<uint64_t> size(10, 400);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<TensorChoices> ts(n_tensors);
  for (size_t i = 0; i < n_tensors; ++i) {
    ts[i].name = "t" + std::to_string(i);
    const uint64_t base = size(rng);
    const double sensitivity = u(rng) * u(rng);
    for (size_t c = 0; c < n_cands; ++c) {
      const double bits = 2.0 + 2.0 * c + u(rng);
      ts[i].candidates.push_back({GgmlType::Q4_K, static_cast<uint64_t>(base * bits),
                                  sensitivity * std::exp(-bits) * (0.5 + u(rng))});
    }
  }
  return ts;
}

uint64_t bytes_of(const std::vector<TensorChoices>& ts, const Allocation& a) {
  uint64_t b = 0;
  for (size_t i = 0; i < ts.size(); ++i) b += ts[i].candidates[a.choice[i]].bytes;
  return b;
}

TEST(Knapsack, ExactEqualsExhaustiveSearchAndGreedyIsNoBetter) {
  std::mt19937 rng(11);
  int greedy_suboptimal = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const size_t n = 2 + trial % 6, k = 2 + trial % 3;
    const auto ts = random_instance(rng, n, k);
    uint64_t lo = 0, hi = 0;
    for (const auto& t : ts) {
      uint64_t mn = UINT64_MAX, mx = 0;
      for (const auto& c : t.candidates) mn = std::min(mn, c.bytes), mx = std::max(mx, c.bytes);
      lo += mn;
      hi += mx;
    }
    const uint64_t budget = lo + (hi - lo) * (trial % 10) / 10;
    const double want = brute_force(ts, budget);
    const Allocation exact = allocate_exact(ts, budget);
    const Allocation greedy = allocate_greedy(ts, budget);
    ASSERT_TRUE(exact.proven_optimal);
    ASSERT_LE(bytes_of(ts, exact), budget);
    ASSERT_LE(bytes_of(ts, greedy), budget);
    ASSERT_EQ(exact.bytes, bytes_of(ts, exact));
    ASSERT_NEAR(exact.cost, want, 1e-12) << "trial " << trial;
    ASSERT_GE(greedy.cost, want - 1e-12) << "trial " << trial;
    greedy_suboptimal += greedy.cost > want + 1e-12;
  }
  // The instances are hard enough that the heuristic misses the optimum sometimes, so the
  // exact solver's search is exercised, not just its bound.
  EXPECT_GT(greedy_suboptimal, 0);
}

TEST(Knapsack, KnownSmallCase) {
  // Budget 30: A upgraded (10 -> 20 bytes) saves 5, B upgraded saves 4 for the same 10 bytes;
  // both do not fit, so A. With 40 both fit.
  const std::vector<TensorChoices> ts = {
      {"A", {{GgmlType::Q4_K, 10, 6.0}, {GgmlType::Q8_0, 20, 1.0}}},
      {"B", {{GgmlType::Q4_K, 10, 5.0}, {GgmlType::Q8_0, 20, 1.0}, {GgmlType::Q6_K, 25, 1.5}}},  // Q6_K dominated
  };
  Allocation a = allocate_exact(ts, 30);
  EXPECT_EQ(a.choice, (std::vector<size_t>{1, 0}));
  EXPECT_DOUBLE_EQ(a.cost, 6.0);
  a = allocate_exact(ts, 40);
  EXPECT_EQ(a.choice, (std::vector<size_t>{1, 1}));
  EXPECT_EQ(a.bytes, 40u);
  a = allocate_greedy(ts, 20);
  EXPECT_EQ(a.choice, (std::vector<size_t>{0, 0}));
}

TEST(Knapsack, BudgetBelowTheSmallestChoiceIsAnError) {
  const std::vector<TensorChoices> ts = {{"A", {{GgmlType::Q4_K, 10, 1.0}}}, {"B", {{GgmlType::Q4_K, 10, 1.0}}}};
  EXPECT_THROW(allocate_greedy(ts, 19), InputError);
  EXPECT_THROW(allocate_exact(ts, 19), InputError);
  const std::vector<TensorChoices> empty = {{"A", {}}};
  EXPECT_THROW(allocate_greedy(empty, 100), InputError);
}

TEST(Knapsack, LargeInstanceFinishesAndBeatsOrTiesGreedy) {
  std::mt19937 rng(5);
  const auto ts = random_instance(rng, 300, 4);  // a 30-layer model's worth of tensors
  uint64_t lo = 0;
  for (const auto& t : ts) lo += t.candidates[0].bytes;
  const Allocation greedy = allocate_greedy(ts, lo * 2);
  const Allocation exact = allocate_exact(ts, lo * 2);
  EXPECT_LE(exact.cost, greedy.cost);
  EXPECT_LE(exact.bytes, lo * 2);
  EXPECT_TRUE(exact.proven_optimal) << exact.nodes << " nodes";
}

}  // namespace
}  // namespace optiq::alloc
