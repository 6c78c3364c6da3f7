// One decode step of one layer's attention as the engine runs it, per KV cache type (CPU time,
// Google Benchmark), at SmolLM2-135M's shape: 9 query heads over 3 K/V heads of width 64, one
// new token after N cached positions. F32/F16 go through the float attention (F16 converts the
// cache to f32 first, as run_block does), block types through causal_attention_cached, TurboQuant
// through causal_attention_turbo. CPU time per step is steadier than a whole `optiq benchmark`
// run on a shared machine, and isolates the part the cache type changes.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench_util.h"
#include "engine/attention_blocks.h"
#include "engine/attention_turbo.h"
#include "engine/kv_cache.h"
#include "engine/ops.h"
#include "engine/threads.h"

namespace {

using optiq::bench::gaussian_floats;

using optiq::engine::KVType;
using optiq::engine::LayerKVCache;

constexpr int64_t kHeads = 9, kKvHeads = 3, kDim = 64;

void BM_DecodeAttention(benchmark::State& state, KVType type) {
  const int64_t n = state.range(0), W = kKvHeads * kDim;
  optiq::engine::set_num_threads(1);
  LayerKVCache kv(n + 1, kKvHeads, kDim, optiq::engine::LayerKVTypes{type, type});
  const auto k = gaussian_floats(static_cast<size_t>((n + 1) * W), 1), v = gaussian_floats(k.size(), 2);
  kv.store(0, n + 1, k.data(), v.data());
  const auto q = gaussian_floats(static_cast<size_t>(kHeads * kDim), 3);
  std::vector<float> out(q.size());
  const float scale = 0.125f;
  for (auto _ : state) {
    if (kv.has_turbo())
      optiq::engine::causal_attention_turbo(q.data(), kv, 1, n, kHeads, scale, 0, out.data());
    else if (kv.has_blocks())
      optiq::engine::causal_attention_cached(q.data(), kv, 1, n, kHeads, scale, 0, out.data());
    else
      optiq::engine::causal_attention(q.data(), kv.keys(n + 1), kv.values(n + 1), 1, n, kHeads, kKvHeads, kDim, scale,
                                      0, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["ns_per_position"] =
      benchmark::Counter(static_cast<double>(n + 1), benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}

}  // namespace

BENCHMARK_CAPTURE(BM_DecodeAttention, f16, KVType::F16)->Arg(2048)->Arg(8192);
BENCHMARK_CAPTURE(BM_DecodeAttention, q8_0, KVType::Q8_0)->Arg(2048)->Arg(8192);
BENCHMARK_CAPTURE(BM_DecodeAttention, q4_0, KVType::Q4_0)->Arg(2048)->Arg(8192);
BENCHMARK_CAPTURE(BM_DecodeAttention, tq4, KVType::TQ4)->Arg(2048)->Arg(8192);
BENCHMARK_CAPTURE(BM_DecodeAttention, tq3, KVType::TQ3)->Arg(2048)->Arg(8192);
BENCHMARK_MAIN();
