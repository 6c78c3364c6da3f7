#include "serve/metrics.h"

#include <cstdio>

namespace optiq::serve {
namespace {

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void counter(std::string& out, const char* name, const char* help, uint64_t value) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n";
  out += std::string(name) + " " + std::to_string(value) + "\n";
}

void gauge(std::string& out, const char* name, const char* help, uint64_t value) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
  out += std::string(name) + " " + std::to_string(value) + "\n";
}

template <size_t N>
void histogram(std::string& out, const char* name, const char* help, const LatencyHistogram<N>& h) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " histogram\n";
  for (size_t i = 0; i < N; ++i)
    out += std::string(name) + "_bucket{le=\"" + number(h.bounds[i]) + "\"} " + std::to_string(h.counts[i]) + "\n";
  out += std::string(name) + "_bucket{le=\"+Inf\"} " + std::to_string(h.count) + "\n";
  out += std::string(name) + "_sum " + number(h.sum) + "\n";
  out += std::string(name) + "_count " + std::to_string(h.count) + "\n";
}

}  // namespace

void Metrics::record(const RequestSample& s) {
  std::lock_guard lock(mutex_);
  ++requests_[{s.route, s.status}];
  prompt_tokens_ += static_cast<uint64_t>(s.prompt_tokens);
  generated_tokens_ += static_cast<uint64_t>(s.generated_tokens);
  cached_tokens_ += static_cast<uint64_t>(s.cached_tokens);
  if (s.time_to_first_token) first_token_.observe(*s.time_to_first_token);
  if (s.time_per_token) per_token_.observe(*s.time_per_token);
}

std::string Metrics::prometheus_text(const SlotGauges& slots) const {
  std::lock_guard lock(mutex_);
  std::string out =
      "# HELP optiq_requests_total HTTP requests answered, by route and status.\n"
      "# TYPE optiq_requests_total counter\n";
  for (const auto& [key, n] : requests_)
    out += "optiq_requests_total{route=\"" + key.first + "\",status=\"" + std::to_string(key.second) + "\"} " +
           std::to_string(n) + "\n";
  counter(out, "optiq_prompt_tokens_total", "Prompt tokens, cached ones included.", prompt_tokens_);
  counter(out, "optiq_prompt_cached_tokens_total", "Prompt tokens the prompt cache held (not evaluated).", cached_tokens_);
  counter(out, "optiq_generated_tokens_total", "Tokens generated.", generated_tokens_);
  histogram(out, "optiq_time_to_first_token_seconds", "From a request's arrival to its first generated token.",
            first_token_);
  histogram(out, "optiq_time_per_output_token_seconds", "Mean time between a request's generated tokens after the first.",
            per_token_);
  gauge(out, "optiq_slots_busy", "KV cache slots held by a request.", static_cast<uint64_t>(slots.busy));
  gauge(out, "optiq_slots_total", "KV cache slots (--parallel).", static_cast<uint64_t>(slots.total));
  gauge(out, "optiq_requests_waiting", "Requests waiting for a free slot.", static_cast<uint64_t>(slots.waiting));
  gauge(out, "optiq_kv_cache_bytes_in_use", "Bytes of the K and V rows the slots hold now.", slots.kv_bytes_in_use);
  gauge(out, "optiq_kv_cache_bytes_total", "Bytes of K and V storage allocated for all slots.", slots.kv_bytes_total);
  counter(out, "optiq_decode_batches_total", "Batched decode passes run.", slots.decode_batches);
  counter(out, "optiq_decode_batch_rows_total", "Decode steps those passes held.", slots.decode_batch_rows);
  return out;
}

}  // namespace optiq::serve
