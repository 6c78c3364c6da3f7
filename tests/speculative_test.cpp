// Speculative decoding at temperature 0 gives exactly plain greedy decoding's tokens, whatever
// the drafter proposes: n-gram lookup, the model itself as its own draft, another model, a
// drafter that is always wrong.
#include <gtest/gtest.h>

#include "engine/ops.h"
#include "spec/ngram_draft.h"
#include "spec/speculative.h"
#include "tiny_llama.h"

namespace optiq::spec {
namespace {

TEST(NgramDraft, ContinuesTheLatestEarlierOccurrenceOfTheLongestSuffix) {
  const std::vector<int32_t> h = {1, 2, 3, 4, 5, 9, 2, 3, 4, 7, 8, 2, 3, 4};
  // Suffix [2, 3, 4] last occurred at 6..8, followed by 7, 8, 2, ...
  EXPECT_EQ(ngram_draft(h, 3), (std::vector<int32_t>{7, 8, 2}));
  EXPECT_EQ(ngram_draft(h, 10), (std::vector<int32_t>{7, 8, 2, 3, 4}));
  const std::vector<int32_t> none = {1, 2, 3, 4, 5};
  EXPECT_TRUE(ngram_draft(none, 4).empty());
  const std::vector<int32_t> short_match = {5, 6, 1, 5, 6};  // only a 2-gram repeats
  EXPECT_EQ(ngram_draft(short_match, 2), (std::vector<int32_t>{1, 5}));
}

// Plain greedy decoding: one forward per token.
std::vector<int32_t> greedy(const engine::Model& m, std::vector<int32_t> ids, int64_t n) {
  engine::KVCache cache = engine::make_kv_cache(m, 64);
  std::vector<float> logits(static_cast<size_t>(m.hp.n_vocab));
  engine::forward(m, cache, ids, false, logits.data());
  for (int64_t i = 0; i < n; ++i) {
    const auto next = static_cast<int32_t>(engine::argmax(logits.data(), m.hp.n_vocab));
    ids.push_back(next);
    const int32_t one[1] = {next};
    engine::forward(m, cache, one, false, logits.data());
  }
  return ids;
}

std::vector<int32_t> speculative(const engine::Model& m, std::vector<int32_t> ids, int64_t n, const Drafter& drafter,
                                 int64_t draft_max, SpecStats* stats = nullptr) {
  engine::KVCache cache = engine::make_kv_cache(m, 64);
  std::vector<float> logits(static_cast<size_t>(m.hp.n_vocab));
  engine::forward(m, cache, ids, false, logits.data());
  const SpecStats st = speculative_greedy(m, cache, ids, logits, drafter, {draft_max, 1}, n, {}, [](int32_t) { return true; });
  if (stats) *stats = st;
  return ids;
}

engine::Model tiny(uint32_t seed, GgmlType type) {
  test::TinyLlamaShape shape;
  shape.seed = seed;
  shape.weight_type = type;
  return test::tiny_llama(shape);
}

TEST(Speculative, GreedyTokensEqualPlainDecodingForEveryDrafter) {
  const std::vector<int32_t> prompt = {1, 7, 3, 7, 3, 9};
  for (GgmlType type : {GgmlType::F32, GgmlType::Q8_0, GgmlType::Q4_0}) {
    const engine::Model target = tiny(10, type);
    const std::vector<int32_t> expected = greedy(target, prompt, 40);
    const engine::Model other = tiny(77, type);
    DraftModel self(target, 64), stranger(other, 64);
    const Drafter ngram = [](std::span<const int32_t> h, int64_t k) { return ngram_draft(h, k); };
    const Drafter by_self = [&](std::span<const int32_t> h, int64_t k) { return self.propose(h, k); };
    const Drafter by_other = [&](std::span<const int32_t> h, int64_t k) { return stranger.propose(h, k); };
    const Drafter wrong = [&](std::span<const int32_t> h, int64_t k) {
      return std::vector<int32_t>(static_cast<size_t>(k), (h.back() + 1) % 40);
    };
    for (int64_t draft_max : {int64_t{1}, int64_t{3}, kMaxDraftTokens}) {
      SpecStats st;
      EXPECT_EQ(speculative(target, prompt, 40, ngram, draft_max), expected) << "ngram, draft_max " << draft_max;
      EXPECT_EQ(speculative(target, prompt, 40, by_self, draft_max, &st), expected) << "self, draft_max " << draft_max;
      EXPECT_EQ(st.accepted, st.drafted) << "the model agrees with itself";
      EXPECT_LT(st.passes, 40) << "accepted drafts save target passes";
      EXPECT_EQ(speculative(target, prompt, 40, by_other, draft_max), expected) << "other model, draft_max " << draft_max;
      EXPECT_EQ(speculative(target, prompt, 40, wrong, draft_max), expected) << "wrong drafts, draft_max " << draft_max;
    }
  }
}

TEST(Speculative, StopsAtStopTokensAndTheLimit) {
  const engine::Model m = tiny(10, GgmlType::F32);
  const std::vector<int32_t> prompt = {1, 7, 3};
  const std::vector<int32_t> expected = greedy(m, prompt, 20);
  const Drafter ngram = [](std::span<const int32_t> h, int64_t k) { return ngram_draft(h, k); };
  EXPECT_EQ(speculative(m, prompt, 7, ngram, 5), std::vector<int32_t>(expected.begin(), expected.begin() + 10));
  // The 5th generated token as a stop token: generation ends before it.
  const int32_t stop[1] = {expected[prompt.size() + 4]};
  engine::KVCache cache = engine::make_kv_cache(m, 64);
  std::vector<float> logits(static_cast<size_t>(m.hp.n_vocab));
  std::vector<int32_t> ids = prompt;
  engine::forward(m, cache, ids, false, logits.data());
  speculative_greedy(m, cache, ids, logits, ngram, {5, 1}, 20, stop, [](int32_t) { return true; });
  const auto first_stop = std::find(expected.begin() + static_cast<std::ptrdiff_t>(prompt.size()), expected.end(), stop[0]);
  EXPECT_EQ(ids, std::vector<int32_t>(expected.begin(), first_stop));
}

}  // namespace
}  // namespace optiq::spec
