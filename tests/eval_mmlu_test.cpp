#include <gtest/gtest.h>

#include "eval/mmlu.h"
#include "util/error.h"

namespace optiq::eval::mmlu {
namespace {

TEST(Mmlu, HeaderlessLetterCsvWithQuotes) {
  const std::string csv =
      "\"What is 2, plus 2?\",3,4,5,\"say \"\"6\"\"\",B\n"
      "Multi\nline?,a,b,c,d,D\n";
  // The second record's question holds no quotes, so its newline ends the record: malformed.
  EXPECT_THROW(parse_csv(csv, "x.csv", "math"), InputError);
  const auto qs = parse_csv("\"What is 2, plus 2?\",3,4,5,\"say \"\"6\"\"\",B\r\n\"Multi\nline?\",a,b,c,d,D", "x.csv", "math");
  ASSERT_EQ(qs.size(), 2u);
  EXPECT_EQ(qs[0].question, "What is 2, plus 2?");
  EXPECT_EQ(qs[0].choices[3], "say \"6\"");
  EXPECT_EQ(qs[0].answer, 1);
  EXPECT_EQ(qs[1].question, "Multi\nline?");
  EXPECT_EQ(qs[1].answer, 3);
}

TEST(Mmlu, HeaderWithIndexAnswers) {
  const auto qs = parse_csv("question,A,B,C,D,answer\nq1,w,x,y,z,0\nq2,w,x,y,z,3\n", "h.csv", "s");
  ASSERT_EQ(qs.size(), 2u);
  EXPECT_EQ(qs[0].answer, 0);
  EXPECT_EQ(qs[1].answer, 3);
}

TEST(Mmlu, BadAnswerNamesTheRecord) {
  try {
    parse_csv("q,a,b,c,d,E\n", "bad.csv", "s");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("record 1"), std::string::npos) << e.what();
  }
}

TEST(Mmlu, PromptFormat) {
  Question ex{"high_school_physics", " Speed? ", {"1", "2", "3", "4"}, 2, 1};
  Question q{"high_school_physics", "Mass?", {"a", "b", "c", "d"}, 0, 2};
  EXPECT_EQ(build_prompt({ex}, q),
            "The following are multiple choice questions (with answers) about high school physics.\n\n"
            "Speed?\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer: C\n\n"
            "Mass?\nA. a\nB. b\nC. c\nD. d\nAnswer:");
}

TEST(Mmlu, SubjectFromFileName) {
  EXPECT_EQ(subject_of("mmlu/dev/abstract_algebra_dev.csv"), "abstract_algebra");
  EXPECT_EQ(subject_of("x/anatomy_test.csv"), "anatomy");
  EXPECT_EQ(subject_of("x/other.csv"), "other");
}

TEST(Mmlu, PredictTakesTheFirstMaximum) {
  EXPECT_EQ(predict({-3.0, -1.0, -1.0, -2.0}), 1);
  EXPECT_EQ(predict({-0.1, -1.0, -1.0, -2.0}), 0);
}

}  // namespace
}  // namespace optiq::eval::mmlu
