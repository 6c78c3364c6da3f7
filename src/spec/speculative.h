// Speculative decoding at temperature 0: a cheap drafter proposes the next few tokens, the
// target model scores them all in one pass (decode is bound by reading the weights, so a pass
// over a few tokens costs little more than over one), and the longest prefix the target's own
// greedy choice agrees with is kept, plus the target's token after it. The tokens are exactly
// plain greedy decoding's: the verify pass's rows go through the same dot kernels and the same
// per-token attention as single-token decode steps (model.h), which holds while a pass has
// fewer than kAttentionGemmTokens rows; hence kMaxDraftTokens.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "engine/kv_cache.h"
#include "engine/model.h"
#include "spec/ngram_draft.h"

namespace optiq::spec {

// Drafted tokens per verify pass at most: a pass holds the last token and the drafts.
inline constexpr int64_t kMaxDraftTokens = engine::kAttentionGemmTokens - 2;

// Proposes up to max_tokens tokens to follow `history` (every token so far, prompt included).
using Drafter = std::function<std::vector<int32_t>(std::span<const int32_t> history, int64_t max_tokens)>;

// A draft model (same vocabulary as the target) decoding greedily in its own cache; between
// calls it keeps the positions it shares with the new history and rolls back the rest.
class DraftModel {
 public:
  DraftModel(const engine::Model& model, int64_t n_ctx);
  std::vector<int32_t> propose(std::span<const int32_t> history, int64_t max_tokens);

 private:
  const engine::Model& model_;
  engine::KVCache cache_;
  std::vector<int32_t> cached_;  // [cache_.n_past] the tokens in cache_
  std::vector<float> logits_;    // [n_vocab]
};

struct SpecParams {
  int64_t draft_max = 5;  // drafted tokens per pass, 1..kMaxDraftTokens
  int64_t draft_min = 1;  // fewer proposed tokens than this: decode one token plainly
};

struct SpecStats {
  int64_t passes = 0;    // target passes after the prompt
  int64_t drafted = 0;   // tokens the drafter proposed and the target checked
  int64_t accepted = 0;  // of them, kept
};

// Greedy decoding of up to n_predict tokens after `ids`, which `cache` already holds, with
// `last_logits` [n_vocab] the target's logits after ids.back(). emit(token) is called for every
// new token in order (ids grows by it first); returning false stops. Stops at `stop_tokens` (not
// emitted) and when the cache is full. Throws InputError for a cache with TurboQuant layers
// (their sink and recent-row state cannot be rolled back yet).
SpecStats speculative_greedy(const engine::Model& target, engine::KVCache& cache, std::vector<int32_t>& ids,
                             std::span<const float> last_logits, const Drafter& drafter, const SpecParams& params,
                             int64_t n_predict, std::span<const int32_t> stop_tokens,
                             const std::function<bool(int32_t)>& emit);

}  // namespace optiq::spec
