// Counters for GET /metrics, in Prometheus' text exposition format (version 0.0.4):
//   optiq_requests_total{route, status}   requests answered, by route and HTTP status
//   optiq_prompt_tokens_total             prompt tokens of the requests, cached ones included
//   optiq_prompt_cached_tokens_total      of those, tokens the prompt cache held (not evaluated)
//   optiq_generated_tokens_total          tokens generated
//   optiq_slots_busy / optiq_slots_total  KV cache slots in use / configured (gauges)
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace optiq::serve {

class Metrics {
 public:
  // `route`: one of the server's paths, or "other" (so clients cannot grow the label set).
  void record(const std::string& route, int status, int64_t prompt_tokens, int64_t generated_tokens,
              int64_t cached_tokens = 0);
  std::string prometheus_text(int busy_slots, int n_slots) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (route, status) -> count
  uint64_t prompt_tokens_ = 0, generated_tokens_ = 0, cached_tokens_ = 0;
};

}  // namespace optiq::serve
