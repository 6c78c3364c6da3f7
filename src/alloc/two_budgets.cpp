#include "alloc/two_budgets.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "util/error.h"

namespace optiq::alloc {
namespace {

constexpr int kMaxDoublings = 200;  // of the time penalty, before giving up
constexpr int kBisections = 40;     // of the time penalty

// The same tensors with each candidate's bytes replaced by `resource(i, k)`.
template <class Resource>
std::vector<TensorChoices> with_resource(const std::vector<TensorChoices>& tensors, Resource resource) {
  std::vector<TensorChoices> out = tensors;
  for (size_t i = 0; i < out.size(); ++i)
    for (size_t k = 0; k < out[i].candidates.size(); ++k) out[i].candidates[k].bytes = resource(i, k);
  return out;
}

void totals(const std::vector<TensorChoices>& tensors, const std::vector<std::vector<uint64_t>>& time, TwoBudgetResult& r) {
  r.bytes = r.time = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    r.bytes += tensors[i].candidates[r.solved.best.choice[i]].bytes;
    r.time += time[i][r.solved.best.choice[i]];
  }
}

}  // namespace

TwoBudgetResult allocate_two_budgets(const std::vector<TensorChoices>& tensors,
                                     const std::vector<std::vector<uint64_t>>& time, uint64_t byte_budget,
                                     uint64_t time_budget) {
  if (time.size() != tensors.size()) throw std::invalid_argument("allocate_two_budgets: one time list per tensor");
  uint64_t fastest = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (time[i].size() != tensors[i].candidates.size()) throw std::invalid_argument("allocate_two_budgets: one time per candidate");
    fastest += *std::min_element(time[i].begin(), time[i].end());
  }
  if (fastest > time_budget)
    throw InputError("--target-tps", std::nullopt, "no allocation of these candidates is predicted to be that fast");

  TwoBudgetResult by_size;
  by_size.solved = allocate_best(tensors, byte_budget);
  totals(tensors, time, by_size);
  if (by_size.time <= time_budget) {
    by_size.method = "size knapsack (its speed meets the target)";
    return by_size;
  }
  const auto timed = with_resource(tensors, [&](size_t i, size_t k) { return time[i][k]; });
  TwoBudgetResult by_time;
  by_time.solved = allocate_best(timed, time_budget);
  totals(tensors, time, by_time);
  if (by_time.bytes <= byte_budget) {
    by_time.solved.best.bytes = by_time.bytes;
    by_time.method = "time knapsack (its size meets the budget)";
    return by_time;
  }
  // Lagrangian relaxation of the time budget: the size knapsack on cost + lambda * time. A larger
  // lambda gives a faster allocation; the least lambda whose allocation meets the time budget is
  // found by doubling, then bisection (greedy solver), and solved once more exactly.
  auto penalised = [&](double lambda) {
    std::vector<TensorChoices> t = tensors;
    for (size_t i = 0; i < t.size(); ++i)
      for (size_t k = 0; k < t[i].candidates.size(); ++k) t[i].candidates[k].cost += lambda * static_cast<double>(time[i][k]);
    return t;
  };
  auto evaluate = [&](const Allocation& a) {
    TwoBudgetResult r;
    r.solved.best = a;
    totals(tensors, time, r);
    r.solved.best.cost = 0;
    for (size_t i = 0; i < tensors.size(); ++i) r.solved.best.cost += tensors[i].candidates[a.choice[i]].cost;
    return r;
  };
  double cost_span = 0;
  for (const auto& t : tensors)
    for (const auto& c : t.candidates) cost_span = std::max(cost_span, std::abs(c.cost));
  double hi = std::max(cost_span, 1e-300) / static_cast<double>(std::max<uint64_t>(time_budget, 1));
  int doublings = 0;
  while (evaluate(allocate_greedy(penalised(hi), byte_budget)).time > time_budget) {
    if (++doublings > kMaxDoublings)
      throw InputError("--target-tps", std::nullopt,
                       "no allocation found that meets both the size budget and the speed target (the most accurate "
                       "allocation within the speed target has " + std::to_string(by_time.bytes) +
                           " bytes of quantizable tensors, the size budget allows " + std::to_string(byte_budget) + ")");
    hi *= 2;
  }
  double lo = 0;
  for (int it = 0; it < kBisections; ++it) {
    const double mid = (lo + hi) / 2;
    (evaluate(allocate_greedy(penalised(mid), byte_budget)).time > time_budget ? lo : hi) = mid;
  }
  TwoBudgetResult best = evaluate(allocate_greedy(penalised(hi), byte_budget));
  best.solved.solver = "greedy";
  SolvedAllocation exact = allocate_best(penalised(hi), byte_budget);
  TwoBudgetResult e = evaluate(exact.best);
  if (e.time <= time_budget && e.bytes <= byte_budget && e.solved.best.cost < best.solved.best.cost) {
    e.solved.solver = exact.solver;
    best = e;
  }
  best.solved.greedy_cost = best.solved.exact_cost = best.solved.best.cost;
  best.solved.best.bytes = best.bytes;
  char method[96];
  std::snprintf(method, sizeof method, "Lagrangian relaxation of the time budget (lambda %.3g per time unit)", hi);
  best.method = method;
  return best;
}

}  // namespace optiq::alloc
