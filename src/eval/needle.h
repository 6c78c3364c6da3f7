// Needle in a haystack: one fact ("The secret number is N.") inserted at a relative depth of a
// generated filler text of a given length; the model is asked for the number. Scored by
// whether the generated answer contains N. Results form a grid (depth x length): the heatmap.
// Generated from a seed: the same seed, depth and length give the same item.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace optiq::eval::needle {

struct Item {
  std::string prompt;          // filler with the needle, then the question
  std::string expected;        // the secret number, as digits
  double depth = 0;            // 0 = start of the filler, 1 = its end
  int64_t target_tokens = 0;   // the context length this item was built for
  int64_t n_tokens = 0;        // tokens of the prompt as counted by the caller's tokenizer
};

using TokenCounter = std::function<int64_t(const std::string&)>;

// Filler sentences are drawn from a fixed list (plain statements about weather, towns, rivers),
// so they never mention a number.
Item make_item(uint64_t seed, double depth, int64_t target_tokens, const TokenCounter& count_tokens);

// Whether the expected number appears as a whole number in the text.
bool is_correct(const Item& item, const std::string& generated);

}  // namespace optiq::eval::needle
