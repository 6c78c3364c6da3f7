#include "spec/ngram_draft.h"

#include <algorithm>

namespace optiq::spec {

std::vector<int32_t> ngram_draft(std::span<const int32_t> history, int64_t max_tokens, const NgramDraftParams& p) {
  const auto n = static_cast<int64_t>(history.size());
  for (int64_t len = std::min(p.max_ngram, n - 1); len >= p.min_ngram; --len) {
    const auto suffix = history.subspan(static_cast<size_t>(n - len));
    // The latest earlier start whose n-gram equals the suffix and that has a token after it.
    for (int64_t start = n - len - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), history.begin() + start)) continue;
      const int64_t from = start + len, count = std::min(max_tokens, n - from);
      return {history.begin() + from, history.begin() + from + count};
    }
  }
  return {};
}

}  // namespace optiq::spec
