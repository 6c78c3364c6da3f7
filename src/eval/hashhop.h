// HashHop (after magic.dev's benchmark): a context of shuffled assignments "'A' = 'B'" between
// random hashes, forming chains; the question names a chain's first hash and a number of hops,
// and the answer is the hash reached after that many hops. Nothing in natural language hints
// at the answer, so only retrieval across the context (and chaining it) solves it.
// Generated from a seed: the same seed, hops and length give the same items.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace optiq::eval::hashhop {

struct Item {
  std::string prompt;    // the assignments, then the question, ending where the answer starts
  std::string expected;  // the hash `hops` steps from the start
  int hops = 0;          // chain steps to follow
  int64_t target_tokens = 0;  // the context length this item was built for
  int64_t n_tokens = 0;       // tokens of the prompt as counted by the caller's tokenizer
};

// Counts the tokens of a text (the model's tokenizer).
using TokenCounter = std::function<int64_t(const std::string&)>;

// One item of about target_tokens tokens with a chain of `hops` steps, the other assignments
// forming distractor chains of the same length; more than target_tokens only when the asked
// chain alone is longer (n_tokens says). hash_chars: letters per hash.
Item make_item(uint64_t seed, int hops, int64_t target_tokens, const TokenCounter& count_tokens, int hash_chars = 8);

// The answer the model generated, cut at the first quote or whitespace, compared exactly.
bool is_correct(const Item& item, const std::string& generated);

}  // namespace optiq::eval::hashhop
