#include "kv/kv_sensitivity.h"

#include <chrono>
#include <stdexcept>

#include "util/progress.h"

namespace optiq::kv {

std::string kv_slot_name(const KVSlot& slot) {
  return "blk." + std::to_string(slot.layer) + (slot.part == KVPart::K ? ".k" : ".v");
}

engine::KVCacheConfig single_slot_config(int64_t n_layer, const KVSlot& slot, engine::KVType type,
                                         const engine::KVCacheConfig& storage) {
  engine::KVCacheConfig config = storage;
  config.layers.assign(static_cast<size_t>(n_layer), engine::LayerKVTypes{});
  auto& layer = config.layers.at(static_cast<size_t>(slot.layer));
  (slot.part == KVPart::K ? layer.k : layer.v) = type;
  return config;
}

std::vector<KVSlot> all_slots(int64_t n_layer) {
  std::vector<KVSlot> slots;
  for (int64_t il = 0; il < n_layer; ++il) {
    slots.push_back({il, KVPart::K});
    slots.push_back({il, KVPart::V});
  }
  return slots;
}

size_t count_missing(const std::vector<KVSlot>& slots, const std::vector<engine::KVType>& types,
                     const sensitivity::SensitivityCheckpoint& checkpoint) {
  size_t missing = 0;
  for (const auto& slot : slots)
    for (engine::KVType t : types)
      if (!checkpoint.find(kv_slot_name(slot), std::string(engine::kv_type_name(t)))) ++missing;
  return missing;
}

KVMeasureStats measure_kv_sensitivity(const engine::Model& model, const sensitivity::TensorKL& kl,
                                      const std::vector<KVSlot>& slots, const std::vector<engine::KVType>& types,
                                      const engine::KVCacheConfig& storage,
                                      sensitivity::SensitivityCheckpoint& checkpoint) {
  using Clock = std::chrono::steady_clock;
  KVMeasureStats stats;
  const uint64_t total = slots.size() * types.size();
  stats.resumed = total - count_missing(slots, types, checkpoint);
  ProgressBar bar("kv sensitivity", total, 1, "measurements", std::nullopt, stats.resumed);
  uint64_t done = stats.resumed;
  bar.update(done);
  for (const auto& slot : slots) {
    const std::string name = kv_slot_name(slot);
    for (engine::KVType t : types) {
      const std::string type_name(engine::kv_type_name(t));
      if (checkpoint.find(name, type_name)) continue;
      const auto t0 = Clock::now();
      const double value = kl.measure_kv_cache(single_slot_config(model.hp.n_layer, slot, t, storage), slot.layer);
      const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      checkpoint.add(name, type_name, value, seconds);
      stats.seconds += seconds;
      ++stats.measured;
      bar.update(++done);
    }
  }
  bar.finish();
  return stats;
}

std::vector<std::vector<double>> kl_table(const std::vector<KVSlot>& slots, const std::vector<engine::KVType>& types,
                                          const sensitivity::SensitivityCheckpoint& checkpoint) {
  std::vector<std::vector<double>> table;
  for (const auto& slot : slots) {
    auto& row = table.emplace_back();
    for (engine::KVType t : types) {
      const auto v = checkpoint.find(kv_slot_name(slot), std::string(engine::kv_type_name(t)));
      if (!v) throw std::logic_error("kl_table: " + kv_slot_name(slot) + " was not measured at " + std::string(engine::kv_type_name(t)));
      row.push_back(*v);
    }
  }
  return table;
}

}  // namespace optiq::kv
