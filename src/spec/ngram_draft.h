// Prompt lookup drafting (n-gram lookup): the tokens that followed the last occurrence of the
// sequence's latest n-gram earlier in the sequence, for text that repeats its context (code
// edits, summaries, tool outputs). No draft model; free to compute.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace optiq::spec {

struct NgramDraftParams {
  int64_t max_ngram = 4;  // longest suffix matched first
  int64_t min_ngram = 2;  // shortest suffix tried before giving up
};

// Up to `max_tokens` tokens that followed the most recent earlier occurrence of the longest
// suffix of `history` (from max_ngram down to min_ngram tokens) that occurs earlier; empty when
// none does.
std::vector<int32_t> ngram_draft(std::span<const int32_t> history, int64_t max_tokens, const NgramDraftParams& p = {});

}  // namespace optiq::spec
