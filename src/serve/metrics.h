// Counters for GET /metrics, in Prometheus' text exposition format (version 0.0.4):
//   optiq_requests_total{route, status}        requests answered, by route and HTTP status
//   optiq_prompt_tokens_total                  prompt tokens of the requests, cached ones included
//   optiq_prompt_cached_tokens_total           of those, tokens the prompt cache held (not evaluated)
//   optiq_generated_tokens_total               tokens generated
//   optiq_time_to_first_token_seconds          histogram: request received -> first token sampled
//   optiq_time_per_output_token_seconds        histogram: mean gap between a request's later tokens
//   optiq_slots_busy / optiq_slots_total       KV cache slots in use / configured (gauges)
//   optiq_requests_waiting                     requests waiting for a free slot (gauge)
//   optiq_kv_cache_bytes_in_use / _total       K and V rows the slots hold now / all allocated (gauges)
//   optiq_decode_batches_total                 batched decode passes run (continuous batching)
//   optiq_decode_batch_rows_total              decode steps those passes held (/ batches: mean batch size)
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace optiq::serve {

// A Prometheus histogram over fixed upper bounds (seconds), cumulative as the format wants.
template <size_t N>
struct LatencyHistogram {
  std::array<double, N> bounds;    // upper bounds, ascending; +Inf is implicit
  std::array<uint64_t, N> counts{};  // observations <= bounds[i]
  uint64_t count = 0;              // all observations (the +Inf bucket)
  double sum = 0;                  // seconds

  void observe(double seconds) {
    for (size_t i = 0; i < N; ++i)
      if (seconds <= bounds[i]) ++counts[i];
    ++count;
    sum += seconds;
  }
};

// One answered request, as the logger sees it.
struct RequestSample {
  std::string route;  // one of the server's paths, or "other" (so clients cannot grow the label set)
  int status = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0, cached_tokens = 0;
  std::optional<double> time_to_first_token;  // seconds, when a token was generated
  std::optional<double> time_per_token;       // seconds, when two or more were
};

// The slots' state when /metrics is read, and the batching counters.
struct SlotGauges {
  int busy = 0, total = 0, waiting = 0;
  uint64_t kv_bytes_in_use = 0, kv_bytes_total = 0;
  uint64_t decode_batches = 0, decode_batch_rows = 0;
};

class Metrics {
 public:
  void record(const RequestSample& sample);
  std::string prometheus_text(const SlotGauges& slots) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (route, status) -> count
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, cached_tokens_ = 0;
  LatencyHistogram<11> first_token_{{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}};
  LatencyHistogram<10> per_token_{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}};
};

}  // namespace optiq::serve
