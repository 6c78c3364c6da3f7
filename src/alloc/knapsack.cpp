#include "alloc/knapsack.h"

#include <algorithm>
#include <numeric>
#include <queue>

#include "util/error.h"

namespace optiq::alloc {
namespace {

// The candidates of one tensor worth considering: sorted by bytes, each strictly cheaper than
// every smaller one (a candidate that is both larger and no cheaper than another is never
// needed: swapping it for the other frees bytes and costs nothing). `hull` indexes the lower
// convex hull of these points, the ones a fractional (LP) solution walks through.
struct Options {
  std::vector<size_t> efficient;  // candidate indices, bytes increasing, cost decreasing
  std::vector<size_t> hull;       // positions in `efficient`, starting with 0
};

Options options_of(const TensorChoices& t) {
  if (t.candidates.empty()) throw InputError(t.name, std::nullopt, "has no candidate types to choose from");
  std::vector<size_t> order(t.candidates.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Candidate &x = t.candidates[a], &y = t.candidates[b];
    return x.bytes != y.bytes ? x.bytes < y.bytes : x.cost < y.cost;
  });
  Options o;
  for (size_t i : order)
    if (o.efficient.empty() || t.candidates[i].cost < t.candidates[o.efficient.back()].cost) o.efficient.push_back(i);
  // Lower hull: drop a middle point when the chord from its predecessor to the new point passes
  // below it (savings per byte must fall along the hull).
  auto at = [&](size_t p) { return t.candidates[o.efficient[p]]; };
  for (size_t p = 0; p < o.efficient.size(); ++p) {
    while (o.hull.size() >= 2) {
      const Candidate a = at(o.hull[o.hull.size() - 2]), b = at(o.hull.back()), c = at(p);
      // b is above the chord a-c when (b - a) x (c - a) <= 0 in (bytes, cost) space.
      const double cross = double(b.bytes - a.bytes) * (c.cost - a.cost) - (b.cost - a.cost) * double(c.bytes - a.bytes);
      if (cross <= 0) o.hull.pop_back();
      else break;
    }
    o.hull.push_back(p);
  }
  return o;
}

// One step along a tensor's hull: from hull position `from` to `from + 1`.
struct Step {
  size_t tensor = 0;
  size_t from = 0;
  uint64_t extra_bytes = 0;
  double saving = 0;  // cost removed
  double rate() const { return saving / static_cast<double>(extra_bytes); }
};

Step step_of(const std::vector<TensorChoices>& ts, const std::vector<Options>& opts, size_t i, size_t h) {
  const Options& o = opts[i];
  const Candidate& a = ts[i].candidates[o.efficient[o.hull[h]]];
  const Candidate& b = ts[i].candidates[o.efficient[o.hull[h + 1]]];
  return {i, h, b.bytes - a.bytes, a.cost - b.cost};
}

void total(const std::vector<TensorChoices>& ts, Allocation& a) {
  a.bytes = 0;
  a.cost = 0;
  for (size_t i = 0; i < ts.size(); ++i) {
    a.bytes += ts[i].candidates[a.choice[i]].bytes;
    a.cost += ts[i].candidates[a.choice[i]].cost;
  }
}

uint64_t smallest_total(const std::vector<TensorChoices>& ts, const std::vector<Options>& opts) {
  uint64_t sum = 0;
  for (size_t i = 0; i < ts.size(); ++i) sum += ts[i].candidates[opts[i].efficient[0]].bytes;
  return sum;
}

void check_feasible(const std::vector<TensorChoices>& ts, const std::vector<Options>& opts, uint64_t budget) {
  const uint64_t least = smallest_total(ts, opts);
  if (least > budget)
    throw InputError("size budget", std::nullopt,
                     std::to_string(budget) + " bytes is below the smallest choice for every tensor (" +
                         std::to_string(least) + " bytes)");
}

}  // namespace

Allocation allocate_greedy(const std::vector<TensorChoices>& tensors, uint64_t budget_bytes) {
  std::vector<Options> opts;
  for (const auto& t : tensors) opts.push_back(options_of(t));
  check_feasible(tensors, opts, budget_bytes);

  std::vector<size_t> pos(tensors.size(), 0);  // hull position of each tensor
  uint64_t left = budget_bytes - smallest_total(tensors, opts);
  auto worse = [](const Step& a, const Step& b) { return a.rate() < b.rate(); };
  std::priority_queue<Step, std::vector<Step>, decltype(worse)> queue(worse);
  for (size_t i = 0; i < tensors.size(); ++i)
    if (opts[i].hull.size() > 1) queue.push(step_of(tensors, opts, i, 0));
  while (!queue.empty()) {
    const Step s = queue.top();
    queue.pop();
    if (s.extra_bytes > left) continue;  // this tensor stops here; others may still fit
    left -= s.extra_bytes;
    pos[s.tensor] = s.from + 1;
    if (s.from + 2 < opts[s.tensor].hull.size()) queue.push(step_of(tensors, opts, s.tensor, s.from + 1));
  }

  Allocation a;
  a.choice.resize(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) a.choice[i] = opts[i].efficient[opts[i].hull[pos[i]]];
  // Leftover bytes may still buy a jump to an efficient point off the hull: take the best
  // saving per byte that fits until none does.
  for (;;) {
    size_t best_t = 0, best_c = 0;
    double best_rate = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
      const Candidate& cur = tensors[i].candidates[a.choice[i]];
      for (size_t c : opts[i].efficient) {
        const Candidate& x = tensors[i].candidates[c];
        if (x.bytes <= cur.bytes || x.cost >= cur.cost || x.bytes - cur.bytes > left) continue;
        const double rate = (cur.cost - x.cost) / double(x.bytes - cur.bytes);
        if (rate > best_rate) best_rate = rate, best_t = i, best_c = c;
      }
    }
    if (best_rate <= 0) break;
    left -= tensors[best_t].candidates[best_c].bytes - tensors[best_t].candidates[a.choice[best_t]].bytes;
    a.choice[best_t] = best_c;
  }
  total(tensors, a);
  return a;
}

namespace {

// Depth-first branch and bound over tensors in a fixed order.
class BranchAndBound {
 public:
  BranchAndBound(const std::vector<TensorChoices>& ts, uint64_t budget, uint64_t max_nodes)
      : ts_(ts), budget_(budget), max_nodes_(max_nodes) {
    for (const auto& t : ts) opts_.push_back(options_of(t));
    // Tensors whose choice matters most first: the bound tightens fastest.
    order_.resize(ts.size());
    std::iota(order_.begin(), order_.end(), 0);
    auto spread = [&](size_t i) {
      const auto& e = opts_[i].efficient;
      return ts[i].candidates[e.front()].cost - ts[i].candidates[e.back()].cost;
    };
    std::stable_sort(order_.begin(), order_.end(), [&](size_t a, size_t b) { return spread(a) > spread(b); });
    depth_of_.resize(ts.size());
    for (size_t d = 0; d < order_.size(); ++d) depth_of_[order_[d]] = d;
    // Suffix sums of the smallest choices, by depth.
    min_bytes_.assign(ts.size() + 1, 0);
    min_cost_.assign(ts.size() + 1, 0);
    for (size_t d = ts.size(); d-- > 0;) {
      const Candidate& c = ts[order_[d]].candidates[opts_[order_[d]].efficient[0]];
      min_bytes_[d] = min_bytes_[d + 1] + c.bytes;
      min_cost_[d] = min_cost_[d + 1] + c.cost;
    }
    // Every hull step of every tensor, best saving per byte first: the LP bound walks these.
    for (size_t i = 0; i < ts.size(); ++i)
      for (size_t h = 0; h + 1 < opts_[i].hull.size(); ++h) steps_.push_back(step_of(ts, opts_, i, h));
    std::stable_sort(steps_.begin(), steps_.end(), [](const Step& a, const Step& b) { return a.rate() > b.rate(); });
  }

  Allocation solve(const Allocation& incumbent) {
    best_ = incumbent;
    current_.assign(ts_.size(), 0);
    complete_ = true;
    search(0, 0, 0.0);
    best_.proven_optimal = complete_;
    best_.nodes = nodes_;
    return best_;
  }

 private:
  // Least cost the tensors at depths d.. can reach with `left` bytes if each may sit between
  // two hull points (the LP relaxation): a lower bound on any integral completion.
  double bound(size_t d, uint64_t left) const {
    double cost = min_cost_[d];
    double room = static_cast<double>(left - min_bytes_[d]);
    for (const Step& s : steps_) {
      if (depth_of_[s.tensor] < d) continue;
      if (static_cast<double>(s.extra_bytes) <= room) {
        room -= static_cast<double>(s.extra_bytes);
        cost -= s.saving;
      } else {
        cost -= s.saving * room / static_cast<double>(s.extra_bytes);
        break;
      }
    }
    return cost;
  }

  void search(size_t d, uint64_t used, double cost) {
    if (++nodes_ > max_nodes_) {
      complete_ = false;
      return;
    }
    if (d == ts_.size()) {
      if (cost < best_.cost) {
        best_.choice = current_;
        total(ts_, best_);
      }
      return;
    }
    const size_t i = order_[d];
    const uint64_t left = budget_ - used;
    // Most expensive in bytes first: it tends to be the LP's choice and finds good solutions early.
    const auto& e = opts_[i].efficient;
    for (size_t k = e.size(); k-- > 0;) {
      const Candidate& c = ts_[i].candidates[e[k]];
      if (c.bytes + min_bytes_[d + 1] > left) continue;
      const double lower = cost + c.cost + bound(d + 1, left - c.bytes);
      if (lower >= best_.cost - 1e-12 * std::max(1.0, std::abs(best_.cost))) continue;
      current_[i] = e[k];
      search(d + 1, used + c.bytes, cost + c.cost);
      if (!complete_) return;
    }
  }

  const std::vector<TensorChoices>& ts_;
  uint64_t budget_;
  uint64_t max_nodes_;
  std::vector<Options> opts_;
  std::vector<size_t> order_;      // depth -> tensor
  std::vector<size_t> depth_of_;   // tensor -> depth
  std::vector<uint64_t> min_bytes_;  // [n + 1] smallest bytes of depths d..
  std::vector<double> min_cost_;     // [n + 1] cost of those smallest choices
  std::vector<Step> steps_;
  std::vector<size_t> current_;
  Allocation best_;
  uint64_t nodes_ = 0;
  bool complete_ = true;
};

}  // namespace

Allocation allocate_exact(const std::vector<TensorChoices>& tensors, uint64_t budget_bytes, uint64_t max_nodes) {
  const Allocation greedy = allocate_greedy(tensors, budget_bytes);
  return BranchAndBound(tensors, budget_bytes, max_nodes).solve(greedy);
}

SolvedAllocation allocate_best(const std::vector<TensorChoices>& tensors, uint64_t budget_bytes) {
  const Allocation greedy = allocate_greedy(tensors, budget_bytes);
  const Allocation exact = BranchAndBound(tensors, budget_bytes, 5'000'000).solve(greedy);
  SolvedAllocation s;
  s.greedy_cost = greedy.cost;
  s.exact_cost = exact.cost;
  s.exact_proven = exact.proven_optimal;
  s.exact_nodes = exact.nodes;
  s.solver = exact.cost <= greedy.cost ? "exact" : "greedy";
  s.best = exact.cost <= greedy.cost ? exact : greedy;
  return s;
}

}  // namespace optiq::alloc
