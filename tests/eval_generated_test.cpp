#include <gtest/gtest.h>

#include "eval/hashhop.h"
#include "eval/needle.h"

namespace optiq::eval {
namespace {

// Whitespace-separated words stand in for a tokenizer.
int64_t count_words(const std::string& s) {
  int64_t n = 0;
  bool in = false;
  for (const char c : s) {
    const bool space = c == ' ' || c == '\n';
    if (!space && !in) ++n;
    in = !space;
  }
  return n;
}

TEST(HashHop, ChainLeadsToTheExpectedHash) {
  const hashhop::Item item = hashhop::make_item(7, 3, 300, count_words);
  EXPECT_LE(item.n_tokens, 300);
  EXPECT_GT(item.n_tokens, 200);
  EXPECT_EQ(item.n_tokens, count_words(item.prompt));
  // Follow the chain by reading the assignments back.
  const std::string marker = "Start at '";
  std::string cur = item.prompt.substr(item.prompt.find(marker) + marker.size(), 8);
  for (int h = 0; h < 3; ++h) {
    const size_t at = item.prompt.find("'" + cur + "' = '");
    ASSERT_NE(at, std::string::npos);
    cur = item.prompt.substr(at + cur.size() + 6, 8);
  }
  EXPECT_EQ(cur, item.expected);
  EXPECT_TRUE(hashhop::is_correct(item, item.expected + "'\nmore"));
  EXPECT_FALSE(hashhop::is_correct(item, "x" + item.expected));
  // Deterministic in the seed.
  EXPECT_EQ(hashhop::make_item(7, 3, 300, count_words).prompt, item.prompt);
  EXPECT_NE(hashhop::make_item(8, 3, 300, count_words).prompt, item.prompt);
}

TEST(Needle, NeedleSitsAtItsDepth) {
  const needle::Item early = needle::make_item(1, 0.0, 400, count_words);
  const needle::Item late = needle::make_item(1, 1.0, 400, count_words);
  const auto rel = [](const needle::Item& it) {
    return static_cast<double>(it.prompt.find("The secret number is " + it.expected)) / static_cast<double>(it.prompt.size());
  };
  EXPECT_LT(rel(early), 0.1);
  EXPECT_GT(rel(late), 0.8);
  EXPECT_LE(late.n_tokens, 400);
  EXPECT_TRUE(needle::is_correct(early, " " + early.expected + "."));
  EXPECT_FALSE(needle::is_correct(early, " " + early.expected + "9"));
}

}  // namespace
}  // namespace optiq::eval
