#include "alloc/two_budgets.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "util/error.h"

namespace optiq::alloc {
namespace {

constexpr uint64_t kSurrogateScale = 1'000'000'000;  // the surrogate budget 1.0, in integer units
constexpr int kSurrogateWeights = 39;                 // w = 1/40 .. 39/40

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
  TwoBudgetResult best;
  bool found = false;
  for (int j = 1; j <= kSurrogateWeights; ++j) {
    const double w = static_cast<double>(j) / (kSurrogateWeights + 1);
    const auto mixed = with_resource(tensors, [&](size_t i, size_t k) {
      const double share = w * static_cast<double>(tensors[i].candidates[k].bytes) / static_cast<double>(byte_budget) +
                           (1 - w) * static_cast<double>(time[i][k]) / static_cast<double>(time_budget);
      return static_cast<uint64_t>(std::ceil(share * kSurrogateScale));
    });
    TwoBudgetResult r;
    try {
      r.solved = allocate_best(mixed, kSurrogateScale);
    } catch (const InputError&) {
      continue;  // even the smallest choices exceed this surrogate budget
    }
    totals(tensors, time, r);
    if (r.bytes > byte_budget || r.time > time_budget) continue;
    if (!found || r.solved.best.cost < best.solved.best.cost) {
      best = r;
      best.solved.best.bytes = r.bytes;
      best.method = "surrogate knapsack, size weight " + std::to_string(j) + "/" + std::to_string(kSurrogateWeights + 1);
      found = true;
    }
  }
  if (!found)
    throw InputError("--target-tps", std::nullopt,
                     "no allocation found that meets both the size budget and the speed target (the smallest file within the "
                     "speed target has " + std::to_string(by_time.bytes) + " bytes of quantizable tensors, the budget allows " +
                         std::to_string(byte_budget) + ")");
  return best;
}

}  // namespace optiq::alloc
