#include "serve/metrics.h"

namespace optiq::serve {

void Metrics::record(const std::string& route, int status, int64_t prompt_tokens, int64_t generated_tokens,
                     int64_t cached_tokens) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, status}];
  prompt_tokens_ += static_cast<uint64_t>(prompt_tokens);
  generated_tokens_ += static_cast<uint64_t>(generated_tokens);
  cached_tokens_ += static_cast<uint64_t>(cached_tokens);
}

std::string Metrics::prometheus_text(int busy_slots, int n_slots) const {
  std::lock_guard lock(mutex_);
  std::string out =
      "# HELP optiq_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE optiq_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += "optiq_requests_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  out += "# HELP optiq_prompt_tokens_total Prompt tokens, cached ones included.\n# TYPE optiq_prompt_tokens_total counter\n";
  out += "optiq_prompt_tokens_total " + std::to_string(prompt_tokens_) + "\n";
  out += "# HELP optiq_prompt_cached_tokens_total Prompt tokens the prompt cache held (not evaluated).\n"
         "# TYPE optiq_prompt_cached_tokens_total counter\n";
  out += "optiq_prompt_cached_tokens_total " + std::to_string(cached_tokens_) + "\n";
  out += "# HELP optiq_generated_tokens_total Tokens generated.\n# TYPE optiq_generated_tokens_total counter\n";
  out += "optiq_generated_tokens_total " + std::to_string(generated_tokens_) + "\n";
  out += "# HELP optiq_slots_busy KV cache slots held by a request.\n# TYPE optiq_slots_busy gauge\n";
  out += "optiq_slots_busy " + std::to_string(busy_slots) + "\n";
  out += "# HELP optiq_slots_total KV cache slots (--parallel).\n# TYPE optiq_slots_total gauge\n";
  out += "optiq_slots_total " + std::to_string(n_slots) + "\n";
  return out;
}

}  // namespace optiq::serve
