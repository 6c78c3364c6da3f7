// Choosing each layer's K and V cache type for an average-bits target: a multiple-choice
// knapsack (alloc/knapsack.h) over the 2 × n_layer slots, each slot's cost the KL measured
// with only it quantized, its size the bytes one position takes in that type. The target is
// the average bits per cached value over all layers' K and V (f16 16, q8_0 8.5, q4_0 4.5).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "kv/kv_sensitivity.h"

namespace optiq::kv {

struct KVPlan {
  std::vector<engine::KVType> types;  // candidates, ascending in size
  std::vector<uint64_t> row_bytes;    // [types] bytes one slot's position takes in each type
  int64_t row_width = 0;              // values per slot and position (n_head_kv * head_dim)
  std::vector<KVSlot> slots;          // [2 * n_layer] layer 0 K, layer 0 V, ...
  std::vector<std::vector<double>> kl;  // [slots][types] measured mean KL, nats
  std::vector<size_t> chosen;         // [slots] index into types
  double target_bits = 0;             // requested average bits per cached value
  uint64_t budget_bytes = 0;          // bytes per position the target allows (all slots)
  uint64_t bytes = 0;                 // bytes per position of the chosen types (all slots)
  double predicted = 0;               // sum of the chosen types' KL, nats
  std::string solver;                 // "exact" or "greedy": whichever found the lower sum
  bool proven_optimal = false;        // the exact solver finished its search
};

// Bytes per position (all slots) of the smallest and the largest candidate everywhere.
uint64_t smallest_bytes(const KVPlan& plan);
uint64_t largest_bytes(const KVPlan& plan);

// Average bits per cached value of `bytes` per position over all slots.
double average_bits(const KVPlan& plan, uint64_t bytes);

// A plan with types, row bytes, row width and slots filled in and no measurements yet.
// Throws InputError naming --target-bits when the target is outside what the candidates can
// make (every slot at the smallest .. every slot at the largest), giving both ends in bits.
KVPlan plan_kv_budget(const std::vector<engine::KVType>& types, int64_t n_layer, int64_t n_head_kv,
                      int64_t head_dim, double target_bits);

// Solves the knapsack for `plan` with the measured kl ([slots][types]) and fills in kl,
// chosen, bytes, predicted, solver and proven_optimal.
void allocate_kv(KVPlan& plan, std::vector<std::vector<double>> kl);

// The chosen types per layer, as kv_config.json and make_kv_cache take them.
std::vector<engine::LayerKVTypes> chosen_layer_types(const KVPlan& plan);

// Predicted total KL with every slot at candidate `type_index` (the additivity prediction of a
// uniform cache of that type).
double uniform_predicted(const KVPlan& plan, size_t type_index);

}  // namespace optiq::kv
