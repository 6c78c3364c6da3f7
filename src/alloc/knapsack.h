// Choosing one quantization type per tensor under a size budget: a multiple-choice knapsack.
// Each tensor offers candidates (type, bytes, predicted cost — the KL divergence measured with
// only that tensor quantized); the total cost is taken as the sum over tensors, and the goal is
// the assignment of least total cost whose bytes fit the budget.
//
// Two solvers: `allocate_greedy` walks each tensor's lower convex hull of (bytes, cost) and
// takes upgrades in order of cost saved per byte (fast, near-optimal, the classic heuristic);
// `allocate_exact` is a branch and bound whose bound is the LP relaxation (the same hull walk
// with one fractional step), which proves optimality unless it runs out of its node budget.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/ggml_type.h"

namespace optiq::alloc {

struct Candidate {
  GgmlType type = GgmlType::F32;
  uint64_t bytes = 0;  // the tensor's size in this type, scales included
  double cost = 0;     // predicted damage (mean KL divergence, nats) of this choice
};

struct TensorChoices {
  std::string name;                   // GGUF tensor name, for messages
  std::vector<Candidate> candidates;  // at least one
};

struct Allocation {
  std::vector<size_t> choice;  // [n_tensors] index into each tensor's candidates
  uint64_t bytes = 0;          // sum of the chosen candidates' bytes
  double cost = 0;             // sum of the chosen candidates' costs
  bool proven_optimal = false; // exact solver: the search finished within its node budget
  uint64_t nodes = 0;          // exact solver: branch-and-bound nodes visited
};

// Throws InputError when even the smallest candidate of every tensor exceeds the budget, or a
// tensor has no candidates.
Allocation allocate_greedy(const std::vector<TensorChoices>& tensors, uint64_t budget_bytes);

// Starts from the greedy solution and searches for a better one; `max_nodes` bounds the work.
Allocation allocate_exact(const std::vector<TensorChoices>& tensors, uint64_t budget_bytes,
                          uint64_t max_nodes = 5'000'000);

// What `optiq convert` and `optiq pareto` use: both solvers, and the better objective of the two.
struct SolvedAllocation {
  Allocation best;                     // the exact solution unless greedy's objective is lower
  double greedy_cost = 0, exact_cost = 0;  // objectives of the two solvers
  bool exact_proven = false;           // the exact search finished within its node budget
  uint64_t exact_nodes = 0;            // branch-and-bound nodes visited
  std::string solver;                  // "greedy" or "exact": the one `best` came from
};
SolvedAllocation allocate_best(const std::vector<TensorChoices>& tensors, uint64_t budget_bytes);

}  // namespace optiq::alloc
