// The sampler chain: each filter keeps exactly the expected set on hand-made logits, a seed
// reproduces its draws, and draw frequencies match the softmax the filters leave.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "engine/sampling.h"

namespace optiq::engine {
namespace {

std::vector<Candidate> candidates(const std::vector<float>& logits) {
  std::vector<Candidate> c;
  for (size_t i = 0; i < logits.size(); ++i) c.push_back({static_cast<int32_t>(i), logits[i]});
  return c;
}

std::set<int32_t> ids(const std::vector<Candidate>& c) {
  std::set<int32_t> s;
  for (const Candidate& x : c) s.insert(x.id);
  return s;
}

std::vector<double> softmax(const std::vector<float>& logits) {
  std::vector<double> p(logits.size());
  double total = 0;
  for (size_t i = 0; i < logits.size(); ++i) total += p[i] = std::exp(logits[i]);
  for (double& x : p) x /= total;
  return p;
}

TEST(Sampling, TopKKeepsTheKLargestInDescendingOrder) {
  auto c = candidates({0.5f, 3.0f, -1.0f, 2.0f, 1.0f});
  top_k_filter(c, 3);
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0].id, 1);
  EXPECT_EQ(c[1].id, 3);
  EXPECT_EQ(c[2].id, 4);
  auto all = candidates({0.5f, 3.0f, -1.0f});
  top_k_filter(all, 0);
  EXPECT_EQ(all.size(), 3u);
  top_k_filter(all, 10);
  EXPECT_EQ(all.size(), 3u);
}

TEST(Sampling, TopPKeepsTheShortestPrefixReachingTheMass) {
  // Probabilities 0.5, 0.25, 0.125, 0.125 (logits are their natural logs).
  const std::vector<float> logits = {std::log(0.125f), std::log(0.5f), std::log(0.25f), std::log(0.125f)};
  auto c = candidates(logits);
  top_p_filter(c, 0.6f);  // 0.5 < 0.6 <= 0.75
  EXPECT_EQ(ids(c), (std::set<int32_t>{1, 2}));
  c = candidates(logits);
  top_p_filter(c, 0.45f);  // the top token alone reaches 0.45
  EXPECT_EQ(ids(c), (std::set<int32_t>{1}));
  c = candidates(logits);
  top_p_filter(c, 0.8f);  // 0.75 < 0.8: one of the two 0.125 tokens, the lower id on the tie
  EXPECT_EQ(ids(c), (std::set<int32_t>{0, 1, 2}));
  c = candidates(logits);
  top_p_filter(c, 1.0f);
  EXPECT_EQ(c.size(), 4u);
}

TEST(Sampling, MinPKeepsTokensAboveTheFractionOfTheTopProbability) {
  // Relative to the top token (logit 0): p / p_max = 1, e^-1 = 0.368, e^-2 = 0.135, e^-3 = 0.050.
  const std::vector<float> logits = {-2.0f, 0.0f, -3.0f, -1.0f};
  auto c = candidates(logits);
  min_p_filter(c, 0.1f);
  EXPECT_EQ(ids(c), (std::set<int32_t>{0, 1, 3}));
  c = candidates(logits);
  min_p_filter(c, 0.2f);
  EXPECT_EQ(ids(c), (std::set<int32_t>{1, 3}));
  c = candidates(logits);
  min_p_filter(c, 0.0f);
  EXPECT_EQ(c.size(), 4u);
}

TEST(Sampling, RepeatPenaltyDividesPositiveAndMultipliesNegativeLogitsOnce) {
  auto c = candidates({2.0f, -1.0f, 4.0f, 0.0f});
  const std::vector<int32_t> recent = {0, 1, 0, 0, 3};  // token 0 three times: penalized once
  apply_repeat_penalty(c, recent, 2.0f);
  EXPECT_FLOAT_EQ(c[0].logit, 1.0f);
  EXPECT_FLOAT_EQ(c[1].logit, -2.0f);
  EXPECT_FLOAT_EQ(c[2].logit, 4.0f);  // not in the history
  EXPECT_FLOAT_EQ(c[3].logit, 0.0f);
}

TEST(Sampling, FrequencyAndPresencePenaltiesSubtractPerOccurrenceAndOnce) {
  auto c = candidates({2.0f, -1.0f, 4.0f, 0.0f});
  const std::vector<int32_t> recent = {0, 1, 0, 0, 3};  // token 0 three times, 1 and 3 once
  apply_frequency_presence_penalty(c, recent, 0.5f, 0.25f);
  EXPECT_FLOAT_EQ(c[0].logit, 2.0f - 3 * 0.5f - 0.25f);  // 0.25
  EXPECT_FLOAT_EQ(c[1].logit, -1.0f - 0.5f - 0.25f);     // -1.75
  EXPECT_FLOAT_EQ(c[2].logit, 4.0f);                     // not in the history
  EXPECT_FLOAT_EQ(c[3].logit, -0.75f);
  auto d = candidates({1.0f, 1.0f});
  apply_frequency_presence_penalty(d, std::vector<int32_t>{1, 1}, -1.0f, -2.0f);  // negative: encouraged
  EXPECT_FLOAT_EQ(d[0].logit, 1.0f);
  EXPECT_FLOAT_EQ(d[1].logit, 1.0f + 2 * 1.0f + 2.0f);
}

TEST(Sampling, SamplerAppliesThePenaltiesAfterTheRepeatPenalty) {
  SamplingParams p;  // greedy
  p.repeat_penalty = 2.0f;
  p.frequency_penalty = 1.0f;
  p.presence_penalty = 0.5f;
  Sampler s(p, 3);
  s.accept(0);
  s.accept(0);
  // token 0: 5 / 2 - 2 * 1 - 0.5 = 0 < token 1's 0.1 (it would win by far without them)
  const float logits[3] = {5.0f, 0.1f, -1.0f};
  EXPECT_EQ(s.sample(logits), 1);
}

TEST(Sampling, PenaltyLooksOnlyAtTheLastNTokens) {
  SamplingParams params;
  params.repeat_penalty = 100.0f;
  params.repeat_last_n = 2;
  Sampler s(params, 3);
  const float logits[3] = {1.0f, 0.9f, 0.8f};
  s.accept(0);
  EXPECT_EQ(s.sample(logits), 1);  // 0 is penalized to 0.01
  s.accept(1);
  s.accept(2);                     // the window is now {1, 2}: 0 is free again
  EXPECT_EQ(s.sample(logits), 0);
}

TEST(Sampling, TemperatureZeroIsGreedyWithLowestIdOnTies) {
  SamplingParams params;
  params.temperature = 0.0f;
  Sampler s(params, 4);
  const float logits[4] = {0.1f, 2.0f, 2.0f, -5.0f};
  for (int i = 0; i < 10; ++i) EXPECT_EQ(s.sample(logits), 1);
}

TEST(Sampling, TheSeedReproducesTheDraws) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.top_k = 0;
  params.top_p = 1.0f;
  params.min_p = 0.0f;
  const std::vector<float> logits = {0.0f, 0.5f, 1.0f, 0.2f, -0.3f, 0.8f};
  auto run = [&](uint32_t seed) {
    params.seed = seed;
    Sampler s(params, 6);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) out.push_back(s.sample(logits.data()));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

// Frequencies over n draws against the expected probabilities: each within 5 standard errors.
void expect_frequencies(const SamplingParams& params, const std::vector<float>& logits,
                        const std::vector<double>& expected) {
  const int n = 200000;
  Sampler s(params, static_cast<int64_t>(logits.size()));
  std::vector<int> counts(logits.size());
  for (int i = 0; i < n; ++i) ++counts[static_cast<size_t>(s.sample(logits.data()))];
  for (size_t i = 0; i < logits.size(); ++i) {
    const double p = expected[i], f = static_cast<double>(counts[i]) / n;
    const double se = std::sqrt(std::max(p * (1 - p), 1e-12) / n);
    EXPECT_NEAR(f, p, 5 * se + 1e-9) << "token " << i;
  }
}

TEST(Sampling, DrawFrequenciesMatchTheSoftmax) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.top_k = 0;
  params.top_p = 1.0f;
  params.min_p = 0.0f;
  params.seed = 7;
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f};
  expect_frequencies(params, logits, softmax(logits));

  // Temperature 0.5 doubles the logits.
  params.temperature = 0.5f;
  std::vector<float> doubled;
  for (float x : logits) doubled.push_back(2 * x);
  expect_frequencies(params, logits, softmax(doubled));
}

TEST(Sampling, DrawFrequenciesAfterFiltersAreTheRenormalizedSoftmax) {
  SamplingParams params;
  params.temperature = 1.0f;
  params.top_k = 3;  // keeps tokens 2, 1, 4
  params.top_p = 1.0f;
  params.min_p = 0.0f;
  params.seed = 11;
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f, -1.0f, 0.5f};
  const std::vector<double> kept = softmax({1.0f, 2.0f, 0.5f});
  expect_frequencies(params, logits, {0.0, kept[0], kept[1], 0.0, kept[2]});
}

}  // namespace
}  // namespace optiq::engine
