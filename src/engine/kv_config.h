// kv_config.json: a cache's per-layer K and V types, and the f16 rows its TurboQuant sides keep,
// as `optiq kv-cache` writes it and --kv-config reads it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/kv_cache.h"

namespace optiq::engine {

struct KVConfigFile {
  std::vector<LayerKVTypes> layers;       // [n_layer]
  std::optional<TurboF16Rows> turbo_f16;  // "turbo_f16" when the file gives it
};

// The per-layer types of a kv_config.json file: {"layers": [{"k": "q8_0", "v": "q4_0"}, ...]}
// with exactly n_layer entries (each "k" and "v" a kv_type_name), or
// {"default": {"k": ..., "v": ...}, "layers": {"3": {"k": "f16"}, ...}} where the object form
// overrides single layers by index and a missing "k"/"v" keeps the default. Either form may add
// "turbo_f16": {"sink": N, "recent": N, "key_stats": N} (turbo_f16_json; a missing member keeps
// TurboF16Rows' default). Throws InputError naming the file and the field for anything else.
KVConfigFile read_kv_config(const std::string& path, int64_t n_layer);

// {"sink": ..., "recent": ..., "key_stats": ...}
nlohmann::ordered_json turbo_f16_json(const TurboF16Rows& rows);

}  // namespace optiq::engine
