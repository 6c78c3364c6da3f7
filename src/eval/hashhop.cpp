#include "eval/hashhop.h"

#include <algorithm>
#include <random>
#include <set>

namespace optiq::eval::hashhop {
namespace {

std::string random_hash(std::mt19937_64& rng, int chars) {
  static const char alphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::string s;
  for (int i = 0; i < chars; ++i) s += alphabet[rng() % (sizeof alphabet - 1)];
  return s;
}

std::string question(const std::string& start, int hops) {
  return "\nEach line above assigns one hash to another. Start at '" + start + "' and follow the assignments " +
         std::to_string(hops) + (hops == 1 ? " time" : " times") + ". The hash you reach is '";
}

std::string build(const std::vector<std::string>& lines, const std::string& start, int hops) {
  std::string text = "Memorize these hash assignments.\n";
  for (const std::string& l : lines) text += l + "\n";
  return text + question(start, hops);
}

}  // namespace

Item make_item(uint64_t seed, int hops, int64_t target_tokens, const TokenCounter& count_tokens, int hash_chars) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(hops) * 1000003ull + static_cast<uint64_t>(target_tokens));
  std::set<std::string> used;
  auto fresh = [&] {
    for (;;) {
      std::string h = random_hash(rng, hash_chars);
      if (used.insert(h).second) return h;
    }
  };
  // Chains of hops + 1 hashes; chain 0 is asked about.
  std::vector<std::vector<std::string>> chains;
  auto add_chain = [&] {
    std::vector<std::string> c;
    for (int i = 0; i <= hops; ++i) c.push_back(fresh());
    chains.push_back(std::move(c));
  };
  auto lines_of = [&] {
    std::vector<std::string> lines;
    for (const auto& c : chains)
      for (int i = 0; i < hops; ++i) lines.push_back("'" + c[i] + "' = '" + c[i + 1] + "'");
    std::mt19937_64 shuffle_rng(seed ^ 0x5DEECE66Dull);
    std::shuffle(lines.begin(), lines.end(), shuffle_rng);
    return lines;
  };
  add_chain();
  Item item;
  item.hops = hops;
  item.target_tokens = target_tokens;
  item.expected = chains[0][static_cast<size_t>(hops)];
  item.prompt = build(lines_of(), chains[0][0], hops);
  item.n_tokens = count_tokens(item.prompt);
  // Add distractor chains while the prompt stays within the target.
  for (;;) {
    add_chain();
    const std::string candidate = build(lines_of(), chains[0][0], hops);
    const int64_t n = count_tokens(candidate);
    if (n > target_tokens) break;
    item.prompt = candidate;
    item.n_tokens = n;
  }
  return item;
}

bool is_correct(const Item& item, const std::string& generated) {
  const size_t start = generated.find_first_not_of(" \t\n");
  if (start == std::string::npos) return false;
  const size_t end = generated.find_first_of("' \t\n\"", start);
  return generated.substr(start, end == std::string::npos ? std::string::npos : end - start) == item.expected;
}

}  // namespace optiq::eval::hashhop
