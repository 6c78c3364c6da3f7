#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "eval/ifeval.h"
#include "eval/ifeval_text.h"
#include "test_util.h"

namespace optiq::eval::ifeval {
namespace {

using nlohmann::json;

struct Case {
  const char* id;
  const char* kwargs;
  std::string response;
  bool follows;
};

// Two or more hand-checked cases per instruction type: one that follows, one that does not,
// and the edges of each rule.
const std::vector<Case>& cases() {
  static const std::vector<Case> c = {
      {"punctuation:no_comma", "{}", "No commas here.", true},
      {"punctuation:no_comma", "{}", "One, comma.", false},
      {"keywords:existence", R"({"keywords": ["Tripoli", "count"]})", "The COUNT of tripoli.", true},
      {"keywords:existence", R"({"keywords": ["Tripoli", "count"]})", "Only Tripoli.", false},
      {"keywords:frequency", R"({"relation": "at least", "keyword": "sun", "frequency": 2})", "Sun, sunny sun.", true},
      {"keywords:frequency", R"({"relation": "less than", "keyword": "sun", "frequency": 2})", "Sun and sunny.", false},
      {"keywords:forbidden_words", R"({"forbidden_words": ["dade", "dupage"]})", "Dadeland is fine.", true},
      {"keywords:forbidden_words", R"({"forbidden_words": ["dade", "dupage"]})", "Visit DuPage county.", false},
      {"keywords:letter_frequency", R"({"let_relation": "at least", "letter": "#", "let_frequency": 2})", "# a # b", true},
      {"keywords:letter_frequency", R"({"let_relation": "less than", "letter": "T", "let_frequency": 2})", "Tot", false},
      {"keywords:letter_frequency", R"({"let_relation": "less than", "letter": "t", "let_frequency": 2})", "Tea", true},
      {"language:response_language", R"({"language": "vi"})", "Tôi yêu thành phố Hà Nội và những con đường của nó.", true},
      {"language:response_language", R"({"language": "vi"})", "I love the city and its streets.", false},
      {"language:response_language", R"({"language": "fa"})", "من این کتاب را دوست دارم و هر روز آن را می‌خوانم.", true},
      {"language:response_language", R"({"language": "kn"})", "ನಾನು ಕನ್ನಡ ಮಾತನಾಡುತ್ತೇನೆ.", true},
      {"language:response_language", R"({"language": "pa"})", "ਮੈਂ ਪੰਜਾਬੀ ਬੋਲਦਾ ਹਾਂ।", true},
      {"language:response_language", R"({"language": "mr"})", "मी घरी आहे आणि मला पुस्तक वाचायला आवडते.", true},
      {"language:response_language", R"({"language": "mr"})", "मैं घर में हूँ और यह किताब अच्छी है।", false},
      {"length_constraints:number_sentences", R"({"relation": "less than", "num_sentences": 3})", "Mr. Smith went to Washington D.C. today. He left at 3.30 p.m. sharp.", true},
      {"length_constraints:number_sentences", R"({"relation": "less than", "num_sentences": 3})", "One. Two! Three? ", false},
      {"length_constraints:number_sentences", R"({"relation": "at least", "num_sentences": 2})", "Wait... what?", true},
      {"length_constraints:number_paragraphs", R"({"num_paragraphs": 2})", "First.\n***\nSecond.", true},
      {"length_constraints:number_paragraphs", R"({"num_paragraphs": 2})", "***\nFirst.\n***\nSecond.\n***", true},
      {"length_constraints:number_paragraphs", R"({"num_paragraphs": 2})", "First.\n***\n***\nSecond.", false},
      {"length_constraints:number_words", R"({"relation": "at least", "num_words": 4})", "it's a two-word", true},
      {"length_constraints:number_words", R"({"relation": "less than", "num_words": 3})", "one two three", false},
      {"length_constraints:nth_paragraph_first_word", R"({"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "weekend"})", "Hi.\n\n\"Weekend, yes.\"", true},
      {"length_constraints:nth_paragraph_first_word", R"({"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "weekend"})", "Hi.\n\nWeekend.", false},
      {"detectable_content:number_placeholders", R"({"num_placeholders": 2})", "Dear [name], at [address].", true},
      {"detectable_content:number_placeholders", R"({"num_placeholders": 2})", "Dear [name].", false},
      {"detectable_content:postscript", R"({"postscript_marker": "P.S."})", "Body.\n\np.s. see you", true},
      {"detectable_content:postscript", R"({"postscript_marker": "P.P.S"})", "Body.\nP.S. only one", false},
      {"detectable_content:postscript", R"({"postscript_marker": "P.P.S"})", "Body.\nP. P. S. two", true},
      {"detectable_format:number_bullet_lists", R"({"num_bullets": 2})", "* one\n- two\n**bold** line", true},
      {"detectable_format:number_bullet_lists", R"({"num_bullets": 2})", "* one\n* two\n* three", false},
      {"detectable_format:number_highlighted_sections", R"({"num_highlights": 2})", "*first* and **second**", true},
      {"detectable_format:number_highlighted_sections", R"({"num_highlights": 2})", "** ** and *one*", false},
      {"detectable_format:multiple_sections", R"({"section_spliter": "SECTION", "num_sections": 2})", "SECTION 1\na\nSECTION 2\nb", true},
      {"detectable_format:multiple_sections", R"({"section_spliter": "SECTION", "num_sections": 2})", "Section 1\na\nSECTION 2\nb", false},
      {"detectable_format:json_format", "{}", "```json\n{\"a\": [1, 2]}\n```", true},
      {"detectable_format:json_format", "{}", "Here: {\"a\": 1}", false},
      {"detectable_format:title", "{}", "<<A Title>>\nText", true},
      {"detectable_format:title", "{}", "<< >> no title", false},
      {"detectable_format:constrained_response", "{}", "Hmm. My answer is maybe.", true},
      {"detectable_format:constrained_response", "{}", "My answer is perhaps.", false},
      {"combination:two_responses", "{}", "First answer.\n******\nSecond answer.", true},
      {"combination:two_responses", "{}", "Same.\n******\nSame.", false},
      {"combination:repeat_prompt", R"({"prompt_to_repeat": "Write a pitch."})", "write a pitch. Here it is!", true},
      {"combination:repeat_prompt", R"({"prompt_to_repeat": "Write a pitch."})", "Here: Write a pitch.", false},
      {"startend:end_checker", R"({"end_phrase": "Any other questions?"})", "Done. any other questions?\"  ", true},
      {"startend:end_checker", R"({"end_phrase": "Any other questions?"})", "Any other questions? Bye.", false},
      {"startend:quotation", "{}", "  \"Quoted text\"\n", true},
      {"startend:quotation", "{}", "\"", false},
      {"change_case:capital_word_frequency", R"({"capital_relation": "at least", "capital_frequency": 2})", "I saw NASA launch", true},
      {"change_case:capital_word_frequency", R"({"capital_relation": "less than", "capital_frequency": 2})", "USA AND UK", false},
      {"change_case:english_capital", "{}", "THIS IS THE END OF THE STORY, AND IT IS GOOD.", true},
      {"change_case:english_capital", "{}", "THIS IS THE END of THE STORY.", false},
      {"change_case:english_lowercase", "{}", "this is the story of a town and its people.", true},
      {"change_case:english_lowercase", "{}", "this is the story of Paris and its people.", false},
  };
  return c;
}

TEST(IfEval, EveryCaseFollowsTheUpstreamRule) {
  for (const Case& c : cases())
    EXPECT_EQ(check_instruction(c.id, json::parse(c.kwargs), c.response), c.follows) << c.id << " on: " << c.response;
}

TEST(IfEval, EveryInstructionOfTheDevSubsetHasAVerifierAndCases) {
  std::ifstream in(test::shared_dir() / "data/ifeval/input_data-first120.jsonl");
  ASSERT_TRUE(in) << "the IFEval dev subset is missing";
  std::set<std::string> in_data, tested_pass, tested_fail;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) {
      const json record = json::parse(line);
      for (const auto& id : record["instruction_id_list"]) in_data.insert(id.get<std::string>());
    }
  for (const Case& c : cases()) (c.follows ? tested_pass : tested_fail).insert(c.id);
  EXPECT_EQ(in_data.size(), 24u);
  for (const std::string& id : in_data) {
    EXPECT_TRUE(is_supported(id)) << id;
    EXPECT_TRUE(tested_pass.count(id) && tested_fail.count(id)) << id << " needs a passing and a failing case";
  }
  EXPECT_EQ(supported_instructions().size(), 25u);  // the whole upstream registry
}

TEST(IfEval, LooseRuleForgivesAFirstLineAndMarkdown) {
  Prompt p;
  p.instruction_ids = {"startend:quotation", "punctuation:no_comma"};
  p.kwargs = {json::object(), json::object()};
  const PromptResult r = evaluate(p, "Sure, here it is:\n\"**A quote**\"");
  EXPECT_EQ(r.strict, (std::vector<bool>{false, false}));
  EXPECT_EQ(r.loose, (std::vector<bool>{true, true}));
  EXPECT_FALSE(r.strict_all());
  EXPECT_TRUE(r.loose_all());
}

TEST(IfEval, EmptyResponseFollowsNothing) {
  Prompt p;
  p.instruction_ids = {"punctuation:no_comma"};
  p.kwargs = {json::object()};
  const PromptResult r = evaluate(p, "  \n");
  EXPECT_FALSE(r.strict[0]);
  EXPECT_FALSE(r.loose[0]);
}

TEST(IfEval, UnknownInstructionOrMissingArgumentThrows) {
  EXPECT_THROW(check_instruction("nope:nothing", json::object(), "x"), std::invalid_argument);
  EXPECT_THROW(check_instruction("keywords:frequency", json::object(), "x"), std::invalid_argument);
}

TEST(IfEval, SentenceSplitter) {
  EXPECT_EQ(split_sentences("Hello there. How are you? Fine!").size(), 3u);
  EXPECT_EQ(split_sentences("Dr. Who met J. R. R. Tolkien at example.com today.").size(), 1u);
  EXPECT_EQ(split_sentences("It costs 3.50 dollars. Cheap").size(), 2u);
  EXPECT_EQ(count_words("it's a well-known fact, 42"), 7);
}

}  // namespace
}  // namespace optiq::eval::ifeval
