// Speed of the engine on a model, measured the way llama-bench measures it: prefill of P tokens
// into an empty context (one batch) and decode of N tokens one at a time from an empty context,
// each repeated R times; tokens/s as the mean over repetitions.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model.h"

namespace optiq::eval {

struct SpeedOptions {
  int64_t n_prompt = 512;  // tokens prefilled in one batch (0: skip)
  int64_t n_gen = 128;     // tokens decoded one by one (0: skip)
  int repetitions = 3;
  int64_t depth = 0;       // tokens already in the context before each decode run (llama-bench's -d)
  engine::KVCacheConfig kv;  // how the KV cache is stored (default: F32)
};

struct SpeedResult {
  std::vector<double> prefill_tps;  // [repetitions] tokens/s of each prefill
  std::vector<double> decode_tps;   // [repetitions] tokens/s of each decode run
  double first_token_ms = 0;        // prefill time of the first repetition plus one decode step
  static double mean(const std::vector<double>& v);
  static double stddev(const std::vector<double>& v);
};

// Token ids are a fixed pseudo-random sequence over the vocabulary (like llama-bench's).
SpeedResult measure_speed(const engine::Model& model, const SpeedOptions& options);

}  // namespace optiq::eval
