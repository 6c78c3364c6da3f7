#include "kv/kv_allocation.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "alloc/knapsack.h"
#include "kv/kv_candidates.h"
#include "util/error.h"

namespace optiq::kv {
namespace {

std::string bits_text(double bits) {
  char s[32];
  std::snprintf(s, sizeof s, "%.4g", bits);
  return s;
}

}  // namespace

uint64_t smallest_bytes(const KVPlan& plan) { return plan.slots.size() * plan.row_bytes.front(); }

uint64_t largest_bytes(const KVPlan& plan) { return plan.slots.size() * plan.row_bytes.back(); }

double average_bits(const KVPlan& plan, uint64_t bytes) {
  return 8.0 * static_cast<double>(bytes) / static_cast<double>(plan.slots.size() * static_cast<size_t>(plan.row_width));
}

KVPlan plan_kv_budget(const std::vector<engine::KVType>& types, int64_t n_layer, int64_t n_head_kv,
                      int64_t head_dim, double target_bits) {
  if (types.empty()) throw InputError("--candidate-bits", std::nullopt, "no candidate KV types");
  KVPlan plan;
  plan.types = sort_by_size(types, n_head_kv, head_dim);
  for (engine::KVType t : plan.types) plan.row_bytes.push_back(kv_row_bytes(t, n_head_kv, head_dim));
  plan.row_width = n_head_kv * head_dim;
  plan.slots = all_slots(n_layer);
  plan.target_bits = target_bits;
  if (!(target_bits > 0) || !std::isfinite(target_bits))
    throw InputError("--target-bits", std::nullopt, "must be a positive number of bits per cached value");
  // The few ulps a decimal target like 4.5 may lose are not a byte.
  const double exact = target_bits * static_cast<double>(plan.slots.size() * static_cast<size_t>(plan.row_width)) / 8.0;
  plan.budget_bytes = static_cast<uint64_t>(std::floor(exact + 1e-6));
  const double low = average_bits(plan, smallest_bytes(plan)), high = average_bits(plan, largest_bytes(plan));
  const std::string range = " the candidates make " + bits_text(low) + " (every K and V " +
                            std::string(engine::kv_type_name(plan.types.front())) + ") to " + bits_text(high) +
                            " bits (every K and V " + std::string(engine::kv_type_name(plan.types.back())) + ")";
  if (plan.budget_bytes < smallest_bytes(plan))
    throw InputError("--target-bits", std::nullopt,
                     bits_text(target_bits) + " bits per value is below what" + range + "; add smaller candidates or raise the target");
  if (plan.budget_bytes > largest_bytes(plan))
    throw InputError("--target-bits", std::nullopt,
                     bits_text(target_bits) + " bits per value is above what" + range + "; add larger candidates or lower the target");
  return plan;
}

void allocate_kv(KVPlan& plan, std::vector<std::vector<double>> kl) {
  if (kl.size() != plan.slots.size()) throw std::invalid_argument("allocate_kv: one KL row per slot expected");
  plan.kl = std::move(kl);
  std::vector<alloc::TensorChoices> choices;
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    if (plan.kl[s].size() != plan.types.size()) throw std::invalid_argument("allocate_kv: one KL per candidate expected");
    alloc::TensorChoices c;
    c.name = kv_slot_name(plan.slots[s]);
    // Candidate::type stays unset: the choice index names the KV type.
    for (size_t i = 0; i < plan.types.size(); ++i) c.candidates.push_back({GgmlType::F32, plan.row_bytes[i], plan.kl[s][i]});
    choices.push_back(std::move(c));
  }
  const alloc::Allocation greedy = alloc::allocate_greedy(choices, plan.budget_bytes);
  const alloc::Allocation exact = alloc::allocate_exact(choices, plan.budget_bytes);
  const alloc::Allocation& best = exact.cost <= greedy.cost ? exact : greedy;
  plan.solver = &best == &exact ? "exact" : "greedy";
  plan.proven_optimal = exact.proven_optimal;
  plan.chosen = best.choice;
  plan.bytes = best.bytes;
  plan.predicted = best.cost;
}

std::vector<engine::LayerKVTypes> chosen_layer_types(const KVPlan& plan) {
  std::vector<engine::LayerKVTypes> layers(plan.slots.size() / 2);
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    const KVSlot& slot = plan.slots[s];
    auto& l = layers.at(static_cast<size_t>(slot.layer));
    (slot.part == KVPart::K ? l.k : l.v) = plan.types[plan.chosen[s]];
  }
  return layers;
}

double uniform_predicted(const KVPlan& plan, size_t type_index) {
  double sum = 0;
  for (const auto& row : plan.kl) sum += row.at(type_index);
  return sum;
}

}  // namespace optiq::kv
