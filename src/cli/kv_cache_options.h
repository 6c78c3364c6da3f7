// The KV cache flags generate, perplexity, benchmark and eval share: --cache-type-k/-v (one type for
// every layer), --kv-config FILE (per layer), --no-kv-hadamard, and the f16 rows TurboQuant sides
// keep (--kv-sink-f16, --kv-recent-f16).
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "engine/kv_cache.h"
#include "engine/model.h"

namespace optiq::cli {

// --kv-sink-f16, --kv-recent-f16 and --kv-key-stats as given; unset ones take the KV config
// file's value, else TurboF16Rows' default.
struct TurboF16Flags {
  std::optional<int64_t> sink, recent, key_stats;
  engine::TurboF16Rows over(engine::TurboF16Rows base) const;
};

struct KVCacheArgs {
  std::string type_k = "f32", type_v = "f32";  // --cache-type-k / --cache-type-v
  std::string config_file;                      // --kv-config, or empty
  bool no_hadamard = false;                     // --no-kv-hadamard
  TurboF16Flags turbo_f16;
};

void add_kv_cache_options(CLI::App* sub, KVCacheArgs& args);
// The TurboF16Flags alone (optiq kv-cache measures TurboQuant candidates with them).
void add_turbo_f16_options(CLI::App* sub, TurboF16Flags& flags);

// The cache configuration the flags ask for, for `model`. Throws InputError for an unknown type
// name, a bad config file, or --kv-config combined with --cache-type-k/-v.
engine::KVCacheConfig kv_cache_config(const KVCacheArgs& args, const engine::Model& model);

// One line for stderr: "KV cache: K q8_0, V q8_0, 1.25 MiB at 512 positions" (or "mixed
// per layer ...").
std::string kv_cache_summary(const engine::KVCache& cache);

}  // namespace optiq::cli
