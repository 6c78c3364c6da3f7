// read_kv_config (engine/kv_config.h): the per-layer KV types of a kv_config.json file.
#include "engine/kv_config.h"

#include "util/error.h"
#include "util/json_file.h"

namespace optiq::engine {
namespace {

using nlohmann::json;

// One "k" or "v" member of an entry at `where` (e.g. "layers[3]"), or `fallback` when absent.
KVType member_type(const std::string& path, const json& entry, const std::string& where, const char* key,
                   const KVType* fallback) {
  const auto it = entry.find(key);
  if (it == entry.end()) {
    if (fallback) return *fallback;
    throw InputError(path, std::nullopt, where + "." + key + " is missing");
  }
  if (!it->is_string()) throw InputError(path, std::nullopt, where + "." + key + " must be a string");
  const auto t = kv_type_from_name(it->get<std::string>());
  if (!t)
    throw InputError(path, std::nullopt,
                     where + "." + key + " is \"" + it->get<std::string>() + "\", not a KV cache type (" +
                         kv_type_names() + ")");
  return *t;
}

LayerKVTypes entry_types(const std::string& path, const json& entry, const std::string& where,
                         const LayerKVTypes* fallback) {
  if (!entry.is_object()) throw InputError(path, std::nullopt, where + " must be an object {\"k\": TYPE, \"v\": TYPE}");
  for (const auto& [key, _] : entry.items())
    if (key != "k" && key != "v")
      throw InputError(path, std::nullopt, where + " has an unknown member \"" + key + "\" (only \"k\" and \"v\")");
  return {member_type(path, entry, where, "k", fallback ? &fallback->k : nullptr),
          member_type(path, entry, where, "v", fallback ? &fallback->v : nullptr)};
}

// A layer index as an object key: decimal digits only, below n_layer.
int64_t layer_index(const std::string& path, const std::string& key, int64_t n_layer) {
  const bool digits = !key.empty() && key.size() <= 9 && key.find_first_not_of("0123456789") == std::string::npos;
  const int64_t i = digits ? std::stoll(key) : -1;
  if (i < 0 || i >= n_layer)
    throw InputError(path, std::nullopt,
                     "layers.\"" + key + "\" is not a layer index of this model (0 .. " + std::to_string(n_layer - 1) + ")");
  return i;
}

// "turbo_f16": each member a non-negative integer; missing ones keep TurboF16Rows' defaults.
TurboF16Rows read_turbo_f16(const std::string& path, const json& j) {
  if (!j.is_object()) throw InputError(path, std::nullopt, "turbo_f16 must be an object {\"sink\": N, \"recent\": N, \"key_stats\": N}");
  TurboF16Rows rows;
  for (const auto& [key, value] : j.items()) {
    int64_t* field = key == "sink" ? &rows.sink : key == "recent" ? &rows.recent : key == "key_stats" ? &rows.key_stats : nullptr;
    if (!field)
      throw InputError(path, std::nullopt, "turbo_f16 has an unknown member \"" + key + "\" (sink, recent, key_stats)");
    if (!value.is_number_integer() || value.get<int64_t>() < 0)
      throw InputError(path, std::nullopt, "turbo_f16." + key + " must be a non-negative integer");
    *field = value.get<int64_t>();
  }
  return rows;
}

std::vector<LayerKVTypes> read_layers(const std::string& path, const json& doc, int64_t n_layer) {
  const auto layers = doc.find("layers");
  if (layers == doc.end()) throw InputError(path, std::nullopt, "\"layers\" is missing");
  const auto def = doc.find("default");

  if (layers->is_array()) {
    if (def != doc.end())
      throw InputError(path, std::nullopt, "\"default\" goes with \"layers\" as an object of overrides, not a list");
    if (static_cast<int64_t>(layers->size()) != n_layer)
      throw InputError(path, std::nullopt,
                       "\"layers\" lists " + std::to_string(layers->size()) + " layers; the model has " +
                           std::to_string(n_layer));
    std::vector<LayerKVTypes> out;
    for (size_t i = 0; i < layers->size(); ++i)
      out.push_back(entry_types(path, (*layers)[i], "layers[" + std::to_string(i) + "]", nullptr));
    return out;
  }
  if (!layers->is_object())
    throw InputError(path, std::nullopt, "\"layers\" must be a list (one entry per layer) or an object of overrides");
  if (def == doc.end())
    throw InputError(path, std::nullopt, "\"layers\" as an object of overrides needs \"default\" for the other layers");
  const LayerKVTypes base = entry_types(path, *def, "default", nullptr);
  std::vector<LayerKVTypes> out(static_cast<size_t>(n_layer), base);
  for (const auto& [key, entry] : layers->items())
    out[static_cast<size_t>(layer_index(path, key, n_layer))] = entry_types(path, entry, "layers." + key, &base);
  return out;
}

}  // namespace

KVConfigFile read_kv_config(const std::string& path, int64_t n_layer) {
  const json doc = read_json_file(path);
  if (!doc.is_object()) throw InputError(path, std::nullopt, "a KV config must be a JSON object with \"layers\"");
  for (const auto& [key, _] : doc.items())
    if (key != "layers" && key != "default" && key != "turbo_f16")
      throw InputError(path, std::nullopt,
                       "unknown member \"" + key + "\" (only \"layers\", \"default\" and \"turbo_f16\")");
  KVConfigFile file;
  file.layers = read_layers(path, doc, n_layer);
  if (const auto rows = doc.find("turbo_f16"); rows != doc.end()) file.turbo_f16 = read_turbo_f16(path, *rows);
  return file;
}

nlohmann::ordered_json turbo_f16_json(const TurboF16Rows& rows) {
  return {{"sink", rows.sink}, {"recent", rows.recent}, {"key_stats", rows.key_stats}};
}

}  // namespace optiq::engine
