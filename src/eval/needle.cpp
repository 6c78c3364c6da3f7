#include "eval/needle.h"

#include <cctype>
#include <random>
#include <vector>

namespace optiq::eval::needle {
namespace {

const std::vector<std::string>& filler_sentences() {
  static const std::vector<std::string> s = {
      "The river bends twice before it reaches the old mill.",
      "Rain fell softly over the hills for most of the afternoon.",
      "The market in the town square opens early on Saturdays.",
      "A narrow bridge crosses the stream near the chapel.",
      "Farmers in the valley grow barley, beans and apples.",
      "The library keeps its maps in a room on the upper floor.",
      "Fog often settles over the harbour in the early morning.",
      "The baker sells warm bread to travellers passing through.",
      "Pine trees line the road that climbs toward the pass.",
      "Children play by the fountain while their parents talk.",
      "The wind turns colder when the clouds come from the north.",
      "An old stone wall marks the edge of the orchard.",
      "Boats rest on the shore when the tide goes out.",
      "The museum shows tools that shepherds once used.",
      "Swallows build their nests under the eaves of the barn.",
      "The path through the forest is quiet and shaded.",
  };
  return s;
}

std::string question() { return "\n\nQuestion: What is the secret number mentioned in the text above?\nAnswer: The secret number is"; }

std::string build(const std::vector<std::string>& filler, size_t insert_at, const std::string& needle) {
  std::string text = "Read the following text carefully.\n\n";
  for (size_t i = 0; i <= filler.size(); ++i) {
    if (i == insert_at) text += needle + " ";
    if (i < filler.size()) text += filler[i] + " ";
  }
  return text + question();
}

}  // namespace

Item make_item(uint64_t seed, double depth, int64_t target_tokens, const TokenCounter& count_tokens) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(depth * 1000) * 7919ull +
                      static_cast<uint64_t>(target_tokens));
  Item item;
  item.depth = depth;
  item.target_tokens = target_tokens;
  item.expected = std::to_string(1000000 + rng() % 9000000);
  const std::string needle = "The secret number is " + item.expected + ".";
  const auto& pool = filler_sentences();
  std::vector<std::string> filler;
  auto place = [&] { return static_cast<size_t>(depth * static_cast<double>(filler.size()) + 0.5); };
  item.prompt = build(filler, 0, needle);
  item.n_tokens = count_tokens(item.prompt);
  // Grow the filler a sentence at a time, keeping the needle at its relative depth.
  for (;;) {
    filler.push_back(pool[rng() % pool.size()]);
    const std::string candidate = build(filler, place(), needle);
    const int64_t n = count_tokens(candidate);
    if (n > target_tokens) break;
    item.prompt = candidate;
    item.n_tokens = n;
  }
  return item;
}

bool is_correct(const Item& item, const std::string& generated) {
  for (size_t p = generated.find(item.expected); p != std::string::npos; p = generated.find(item.expected, p + 1)) {
    const bool left = p == 0 || !std::isdigit(static_cast<unsigned char>(generated[p - 1]));
    const size_t e = p + item.expected.size();
    const bool right = e >= generated.size() || !std::isdigit(static_cast<unsigned char>(generated[e]));
    if (left && right) return true;
  }
  return false;
}

}  // namespace optiq::eval::needle
