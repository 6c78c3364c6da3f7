#include <gtest/gtest.h>

#include "eval/gsm8k.h"

namespace optiq::eval::gsm8k {
namespace {

const Problem kProblem{"How many?", "She has 1,000 + 234 = <<1000+234=1234>>1,234 apples.\n#### 1,234"};

TEST(Gsm8k, ReferenceDropsCommasAndReasoning) { EXPECT_EQ(reference(kProblem), "1234"); }

TEST(Gsm8k, StrictMatchReadsTheNumberAfterHashes) {
  EXPECT_EQ(extract_strict("so 5 + 7 = 12\n#### 12"), "12");
  EXPECT_EQ(extract_strict("#### -3.5 dollars"), "-3.5");
  EXPECT_EQ(extract_strict("#### 1,234."), "1,234.");
  EXPECT_FALSE(extract_strict("The answer is 12."));
  EXPECT_FALSE(extract_strict("####12"));  // the rule needs the space
}

TEST(Gsm8k, FlexibleTakesTheLastNumber) {
  EXPECT_EQ(extract_flexible("She pays $12 then $1,234.00 in total."), "$1,234.00");
  EXPECT_EQ(extract_flexible("3 apples and 5 pears make 8"), "8");
  EXPECT_EQ(extract_flexible("It is -7"), "-7");
  EXPECT_FALSE(extract_flexible("no digits here"));
}

TEST(Gsm8k, NormalizationFollowsLmEval) {
  EXPECT_EQ(normalize("$1,234."), "1234");
  EXPECT_EQ(normalize("work... #### 18"), "18");
  EXPECT_EQ(normalize("1,234.00"), "1234.00");  // no numeric equivalence: exact match
}

TEST(Gsm8k, CorrectnessCases) {
  EXPECT_TRUE(is_correct(extract_strict("1000 + 234 = 1234\n#### 1,234"), kProblem));
  EXPECT_TRUE(is_correct(extract_flexible("Total: $1,234."), kProblem));
  EXPECT_FALSE(is_correct(extract_flexible("Total: 1,235"), kProblem));
  EXPECT_FALSE(is_correct(std::nullopt, kProblem));
  EXPECT_FALSE(is_correct(extract_flexible("1234.0"), kProblem));
}

TEST(Gsm8k, PromptFormat) {
  const Problem ex{"Q1?", "A1\n#### 1"};
  EXPECT_EQ(build_prompt({ex}, {"Q2?", "x"}), "Question: Q1?\nAnswer: A1\n#### 1\n\nQuestion: Q2?\nAnswer:");
}

}  // namespace
}  // namespace optiq::eval::gsm8k
