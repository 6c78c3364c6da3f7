// Per-layer KV cache sensitivity: for every layer and for its keys and values separately, the
// mean KL divergence KL(P_ref || P_test) of the next-token distribution when only that layer's
// K (or V) is stored in a candidate type. The reference is the model as loaded with an F32
// cache, so the measurement works on an already-quantized model (its weights are the ones the
// cache will serve). Each sequence's block inputs are computed once (sensitivity::TensorKL);
// a measurement re-runs from the layer it quantizes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "sensitivity/checkpoint.h"
#include "sensitivity/tensor_kl.h"

namespace optiq::kv {

enum class KVPart { K, V };

// One layer's keys or values: what gets one type in a kv_config.json.
struct KVSlot {
  int64_t layer = 0;
  KVPart part = KVPart::K;
};

// "blk.3.k" / "blk.3.v": the slot's name in the checkpoint and the report.
std::string kv_slot_name(const KVSlot& slot);

// The cache configuration with every layer F32 except `slot`, stored as `type`; the rest of
// `storage` (hadamard, turbo_f16) is kept, its layers are replaced.
engine::KVCacheConfig single_slot_config(int64_t n_layer, const KVSlot& slot, engine::KVType type,
                                         const engine::KVCacheConfig& storage);

// Every slot of a model in order: layer 0 K, layer 0 V, layer 1 K, ...
std::vector<KVSlot> all_slots(int64_t n_layer);

struct KVMeasureStats {
  size_t measured = 0;  // (slot, type) pairs measured in this run
  size_t resumed = 0;   // pairs found in the checkpoint
  double seconds = 0;   // spent measuring in this run
};

// The (slot, type) pairs `checkpoint` does not hold yet.
size_t count_missing(const std::vector<KVSlot>& slots, const std::vector<engine::KVType>& types,
                     const sensitivity::SensitivityCheckpoint& checkpoint);

// Measures every (slot, type) pair not already in `checkpoint` with `kl` (built on the model
// with an F32 cache) and records it there; a progress bar with ETA runs on a terminal.
KVMeasureStats measure_kv_sensitivity(const engine::Model& model, const sensitivity::TensorKL& kl,
                                      const std::vector<KVSlot>& slots, const std::vector<engine::KVType>& types,
                                      const engine::KVCacheConfig& storage,
                                      sensitivity::SensitivityCheckpoint& checkpoint);

// kl[slot][type] from the checkpoint, which must hold every pair: [slots.size()][types.size()].
std::vector<std::vector<double>> kl_table(const std::vector<KVSlot>& slots, const std::vector<engine::KVType>& types,
                                          const sensitivity::SensitivityCheckpoint& checkpoint);

}  // namespace optiq::kv
