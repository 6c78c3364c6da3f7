#include "engine/sampling.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>

namespace optiq::engine {
namespace {

bool by_logit_desc(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

}  // namespace

void apply_repeat_penalty(std::vector<Candidate>& cand, std::span<const int32_t> recent, float penalty) {
  if (penalty == 1.0f || recent.empty()) return;
  const std::unordered_set<int32_t> seen(recent.begin(), recent.end());
  for (Candidate& c : cand) {
    if (!seen.contains(c.id)) continue;
    c.logit = c.logit > 0 ? c.logit / penalty : c.logit * penalty;
  }
}

void apply_frequency_presence_penalty(std::vector<Candidate>& cand, std::span<const int32_t> recent, float frequency,
                                      float presence) {
  if ((frequency == 0.0f && presence == 0.0f) || recent.empty()) return;
  std::unordered_map<int32_t, int> count;  // token -> occurrences in recent
  for (const int32_t t : recent) ++count[t];
  for (Candidate& c : cand)
    if (const auto it = count.find(c.id); it != count.end())
      c.logit -= static_cast<float>(it->second) * frequency + presence;
}

void top_k_filter(std::vector<Candidate>& cand, int32_t k) {
  if (k <= 0) return;
  const size_t keep = std::min(cand.size(), static_cast<size_t>(k));
  std::partial_sort(cand.begin(), cand.begin() + static_cast<ptrdiff_t>(keep), cand.end(), by_logit_desc);
  cand.resize(keep);
}

void top_p_filter(std::vector<Candidate>& cand, float p) {
  if (p >= 1.0f || cand.empty()) return;
  std::sort(cand.begin(), cand.end(), by_logit_desc);
  const float max = cand.front().logit;
  double total = 0.0;
  for (const Candidate& c : cand) total += std::exp(static_cast<double>(c.logit) - max);
  double mass = 0.0;
  for (size_t i = 0; i < cand.size(); ++i) {
    mass += std::exp(static_cast<double>(cand[i].logit) - max) / total;
    if (mass >= p) {
      cand.resize(i + 1);
      return;
    }
  }
}

void min_p_filter(std::vector<Candidate>& cand, float p) {
  if (p <= 0.0f || cand.empty()) return;
  float max = cand.front().logit;
  for (const Candidate& c : cand) max = std::max(max, c.logit);
  const float threshold = max + std::log(p);
  std::erase_if(cand, [&](const Candidate& c) { return c.logit < threshold; });
}

void apply_temperature(std::vector<Candidate>& cand, float t) {
  for (Candidate& c : cand) c.logit /= t;
}

int32_t draw(const std::vector<Candidate>& cand, std::mt19937& rng) {
  float max = cand.front().logit;
  for (const Candidate& c : cand) max = std::max(max, c.logit);
  double total = 0.0;
  for (const Candidate& c : cand) total += std::exp(static_cast<double>(c.logit) - max);
  const double target = std::uniform_real_distribution<double>(0.0, 1.0)(rng) * total;
  double running = 0.0;
  for (const Candidate& c : cand) {
    running += std::exp(static_cast<double>(c.logit) - max);
    if (running >= target) return c.id;
  }
  return cand.back().id;
}

Sampler::Sampler(const SamplingParams& params, int64_t n_vocab)
    : params_(params), n_vocab_(n_vocab), rng_(params.seed) {
  cand_.reserve(static_cast<size_t>(n_vocab));
}

void Sampler::accept(int32_t token) {
  if (params_.repeat_last_n <= 0) return;
  recent_.push_back(token);
  if (recent_.size() > static_cast<size_t>(params_.repeat_last_n)) recent_.pop_front();
}

int32_t Sampler::sample(const float* logits) {
  cand_.clear();
  for (int64_t i = 0; i < n_vocab_; ++i) cand_.push_back({static_cast<int32_t>(i), logits[i]});
  const std::vector<int32_t> recent(recent_.begin(), recent_.end());
  apply_repeat_penalty(cand_, recent, params_.repeat_penalty);
  apply_frequency_presence_penalty(cand_, recent, params_.frequency_penalty, params_.presence_penalty);
  if (params_.temperature <= 0.0f)
    return std::min_element(cand_.begin(), cand_.end(), by_logit_desc)->id;
  top_k_filter(cand_, params_.top_k);
  top_p_filter(cand_, params_.top_p);
  min_p_filter(cand_, params_.min_p);
  apply_temperature(cand_, params_.temperature);
  return draw(cand_, rng_);
}

uint32_t random_seed() { return std::random_device{}(); }

}  // namespace optiq::engine
