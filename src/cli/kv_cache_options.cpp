#include "cli/kv_cache_options.h"

#include <cstdio>

#include "engine/kv_config.h"
#include "util/error.h"

namespace optiq::cli {

void add_kv_cache_options(CLI::App* sub, KVCacheArgs& args) {
  const std::string names = engine::kv_type_names();
  sub->add_option("--cache-type-k", args.type_k, "storage type of every layer's keys (default f32): " + names);
  sub->add_option("--cache-type-v", args.type_v, "storage type of every layer's values (default f32): " + names);
  sub->add_option("--kv-config", args.config_file,
                  "per-layer K and V types from a JSON file: {\"layers\": [{\"k\": \"q8_0\", \"v\": \"q4_0\"}, ...]}");
  sub->add_flag("--no-kv-hadamard", args.no_hadamard,
                "do not Walsh-Hadamard-rotate quantized K/V heads before caching them (llama.cpp rotates, "
                "unless LLAMA_ATTN_ROT_DISABLE=1)");
  add_turbo_f16_options(sub, args.turbo_f16);
}

void add_turbo_f16_options(CLI::App* sub, TurboF16Flags& flags) {
  const engine::TurboF16Rows d;
  sub->add_option("--kv-sink-f16", flags.sink,
                  "first positions a TurboQuant K/V also keeps in f16 (0: none; default " + std::to_string(d.sink) +
                      ", or the --kv-config file's)")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_option("--kv-recent-f16", flags.recent,
                  "newest positions (per query) a TurboQuant K/V reads from f16 instead of codes (0: codes only; "
                  "default " + std::to_string(d.recent) + ", or the --kv-config file's)")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_option("--kv-key-stats", flags.key_stats,
                  "first positions TurboQuant keys take their per-channel offset and scales from (0: none; default " +
                      std::to_string(d.key_stats) + ", or the --kv-config file's)")
      ->check(CLI::Range(0, 1 << 20));
}

engine::TurboF16Rows TurboF16Flags::over(engine::TurboF16Rows base) const {
  if (sink) base.sink = *sink;
  if (recent) base.recent = *recent;
  if (key_stats) base.key_stats = *key_stats;
  return base;
}

engine::KVCacheConfig kv_cache_config(const KVCacheArgs& args, const engine::Model& model) {
  engine::KVCacheConfig config;
  config.hadamard = !args.no_hadamard;
  config.turbo_f16 = args.turbo_f16.over({});
  if (!args.config_file.empty()) {
    if (args.type_k != "f32" || args.type_v != "f32")
      throw InputError("--kv-config", std::nullopt, "give either --kv-config or --cache-type-k/-v, not both");
    engine::KVConfigFile file = engine::read_kv_config(args.config_file, model.hp.n_layer);
    config.layers = std::move(file.layers);
    if (file.turbo_f16) config.turbo_f16 = args.turbo_f16.over(*file.turbo_f16);
    return config;
  }
  const engine::LayerKVTypes uniform{engine::parse_kv_type(args.type_k), engine::parse_kv_type(args.type_v)};
  config.layers.assign(static_cast<size_t>(model.hp.n_layer), uniform);
  return config;
}

std::string kv_cache_summary(const engine::KVCache& cache) {
  std::string types;
  bool uniform = true;
  for (const auto& l : cache.layers) uniform &= l.k_type() == cache.layers[0].k_type() && l.v_type() == cache.layers[0].v_type();
  if (cache.layers.empty()) {
    types = "no layers";
  } else if (uniform) {
    types = "K " + std::string(engine::kv_type_name(cache.layers[0].k_type())) + ", V " +
            std::string(engine::kv_type_name(cache.layers[0].v_type()));
  } else {
    types = "per layer (K/V)";
    for (const auto& l : cache.layers)
      types += " " + std::string(engine::kv_type_name(l.k_type())) + "/" + std::string(engine::kv_type_name(l.v_type()));
  }
  char size[96];
  std::snprintf(size, sizeof size, ", %zu bytes (%.2f MiB) for %lld positions", cache.bytes(),
                static_cast<double>(cache.bytes()) / 1048576.0, static_cast<long long>(cache.n_ctx));
  return "KV cache: " + types + size;
}

}  // namespace optiq::cli
