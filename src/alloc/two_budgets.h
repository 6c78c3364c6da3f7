// Allocation under two budgets at once: file size and predicted decode time per token (`optiq
// convert --target-size/--target-bpw` with `--target-tps`). Both are sums over tensors, so each
// alone is the multiple-choice knapsack of knapsack.h. With both:
//  1. the size knapsack's optimum, if its time fits, is optimal for both (the time constraint
//     only removes solutions); likewise the time knapsack's optimum if its size fits;
//  2. otherwise a Lagrangian relaxation of the time budget: the size knapsack on the cost
//     KL + lambda × time, with the least lambda (doubling, then bisection) whose allocation meets
//     the time budget. Feasible by construction; optimal only up to the duality gap.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "alloc/knapsack.h"

namespace optiq::alloc {

struct TwoBudgetResult {
  SolvedAllocation solved;  // its choice, cost, the solver that gave it
  uint64_t bytes = 0;       // sum of the chosen candidates' bytes
  uint64_t time = 0;        // sum of the chosen candidates' times
  std::string method;       // which step above found it
};

// `time[i][k]`: tensor i's candidate k's time (any integer unit, e.g. picoseconds). Throws
// InputError when no allocation meets both budgets (naming what each alone reaches).
TwoBudgetResult allocate_two_budgets(const std::vector<TensorChoices>& tensors,
                                     const std::vector<std::vector<uint64_t>>& time, uint64_t byte_budget,
                                     uint64_t time_budget);

}  // namespace optiq::alloc
