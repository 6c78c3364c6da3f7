#include "spec/speculative.h"

#include <algorithm>

#include "engine/ops.h"
#include "util/error.h"

namespace optiq::spec {

DraftModel::DraftModel(const engine::Model& model, int64_t n_ctx)
    : model_(model), cache_(engine::make_kv_cache(model, n_ctx)), logits_(static_cast<size_t>(model.hp.n_vocab)) {}

std::vector<int32_t> DraftModel::propose(std::span<const int32_t> history, int64_t max_tokens) {
  // Keep the shared prefix (at least one token of history is re-run for its logits).
  size_t keep = 0;
  while (keep < cached_.size() && keep + 1 < history.size() && cached_[keep] == history[keep]) ++keep;
  cached_.resize(keep);
  cache_.roll_back(static_cast<int64_t>(keep));
  std::vector<int32_t> out;
  max_tokens = std::min(max_tokens, cache_.n_ctx - static_cast<int64_t>(history.size()));
  if (max_tokens <= 0) return out;
  const auto rest = history.subspan(keep);
  engine::forward(model_, cache_, rest, false, logits_.data());
  cached_.insert(cached_.end(), rest.begin(), rest.end());
  for (int64_t i = 0; i < max_tokens; ++i) {
    const auto next = static_cast<int32_t>(engine::argmax(logits_.data(), model_.hp.n_vocab));
    out.push_back(next);
    if (i + 1 == max_tokens) break;
    const int32_t one[1] = {next};
    engine::forward(model_, cache_, one, false, logits_.data());
    cached_.push_back(next);
  }
  return out;
}

SpecStats speculative_greedy(const engine::Model& target, engine::KVCache& cache, std::vector<int32_t>& ids,
                             std::span<const float> last_logits, const Drafter& drafter, const SpecParams& params,
                             int64_t n_predict, std::span<const int32_t> stop_tokens,
                             const std::function<bool(int32_t)>& emit) {
  if (!cache.rolls_back())
    throw InputError("speculative decoding", std::nullopt,
                     "TurboQuant KV caches cannot roll back rejected drafts yet; use another cache type");
  const int64_t V = target.hp.n_vocab;
  const int64_t draft_max = std::clamp<int64_t>(params.draft_max, 1, kMaxDraftTokens);
  std::vector<float> logits(last_logits.begin(), last_logits.end());  // [rows, V]; row `row` is the latest
  int64_t row = 0;
  SpecStats stats;
  auto is_stop = [&](int32_t t) { return std::find(stop_tokens.begin(), stop_tokens.end(), t) != stop_tokens.end(); };
  for (int64_t produced = 0; produced < n_predict;) {
    const auto next = static_cast<int32_t>(engine::argmax(logits.data() + row * V, V));
    if (is_stop(next)) break;
    ids.push_back(next);
    ++produced;
    if (!emit(next) || produced == n_predict || cache.n_past + 1 > cache.n_ctx) break;
    // Room for `next` and the drafts, and no more drafts than tokens still wanted.
    const int64_t room = std::min(cache.n_ctx - cache.n_past - 1, n_predict - produced);
    std::vector<int32_t> draft = room > 0 ? drafter(ids, std::min(draft_max, room)) : std::vector<int32_t>{};
    if (static_cast<int64_t>(draft.size()) < params.draft_min) draft.clear();
    std::vector<int32_t> batch = {next};
    batch.insert(batch.end(), draft.begin(), draft.end());
    logits.resize(batch.size() * static_cast<size_t>(V));
    const int64_t n_past = cache.n_past;
    engine::forward(target, cache, batch, /*all_logits=*/true, logits.data());
    ++stats.passes;
    stats.drafted += static_cast<int64_t>(draft.size());
    // Keep drafts while the target's choice after the tokens before them is the draft itself.
    int64_t kept = 0;
    bool stopped = false;
    while (kept < static_cast<int64_t>(draft.size()) &&
           engine::argmax(logits.data() + kept * V, V) == draft[static_cast<size_t>(kept)]) {
      const int32_t t = draft[static_cast<size_t>(kept)];
      if (is_stop(t)) break;
      ++kept;
      ids.push_back(t);
      ++produced;
      if (!emit(t) || produced == n_predict) {
        stopped = true;
        break;
      }
    }
    stats.accepted += kept;
    cache.roll_back(n_past + 1 + kept);  // the rejected drafts' positions
    row = kept;
    if (stopped) break;
  }
  return stats;
}

}  // namespace optiq::spec
