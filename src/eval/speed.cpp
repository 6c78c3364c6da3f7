#include "eval/speed.h"

#include <chrono>
#include <cmath>
#include <numeric>

namespace optiq::eval {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A fixed sequence that visits the vocabulary without a pattern the model could lock onto.
std::vector<int32_t> bench_tokens(int64_t n, int64_t n_vocab) {
  std::vector<int32_t> t(static_cast<size_t>(n));
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (auto& id : t) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    id = static_cast<int32_t>(x % static_cast<uint64_t>(n_vocab));
  }
  return t;
}

}  // namespace

double SpeedResult::mean(const std::vector<double>& v) {
  return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double SpeedResult::stddev(const std::vector<double>& v) {
  if (v.size() < 2) return 0.0;
  const double m = mean(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size() - 1));
}

SpeedResult measure_speed(const engine::Model& model, const SpeedOptions& options) {
  const int64_t V = model.hp.n_vocab;
  const int64_t n_ctx = std::max<int64_t>({options.n_prompt, options.depth + options.n_gen, 1});
  const auto prompt = bench_tokens(options.n_prompt, V);
  const auto gen = bench_tokens(options.n_gen, V);
  const auto depth = bench_tokens(options.depth, V);
  std::vector<float> logits(static_cast<size_t>(V));
  SpeedResult r;
  for (int rep = 0; rep < options.repetitions; ++rep) {
    if (options.n_prompt > 0) {
      engine::KVCache cache = engine::make_kv_cache(model, n_ctx + 1, options.kv);
      const auto t0 = std::chrono::steady_clock::now();
      engine::forward(model, cache, prompt, false, logits.data());
      const double s = seconds_since(t0);
      r.prefill_tps.push_back(static_cast<double>(options.n_prompt) / s);
      if (rep == 0) {
        const auto t1 = std::chrono::steady_clock::now();
        const int32_t one[1] = {gen.empty() ? prompt[0] : gen[0]};
        engine::forward(model, cache, one, false, logits.data());
        r.first_token_ms = 1000.0 * (s + seconds_since(t1));
      }
    }
    if (options.n_gen > 0) {
      engine::KVCache cache = engine::make_kv_cache(model, n_ctx + 1, options.kv);
      if (!depth.empty()) engine::forward(model, cache, depth, false, logits.data());
      const auto t0 = std::chrono::steady_clock::now();
      for (int32_t id : gen) {
        const int32_t one[1] = {id};
        engine::forward(model, cache, one, false, logits.data());
      }
      r.decode_tps.push_back(static_cast<double>(options.n_gen) / seconds_since(t0));
    }
  }
  return r;
}

}  // namespace optiq::eval
