// GSM8K scoring as lm-evaluation-harness defines it (tasks/gsm8k/gsm8k.yaml): k-shot prompts
// "Question: Q\nAnswer: A\n\n" whose exemplar answers are the train file's chain-of-thought
// solutions ending in "#### N"; the model's answer is cut at the first stop sequence, then
//  - strict match: the number after the first "#### " (regex "#### (\-?[0-9\.\,]+)");
//  - flexible extract: the last number in the text (regex "(-?[$0-9.,]{2,})|(-?[0-9]+)");
// and both are compared with the reference by exact match after removing ",", "$", everything
// up to "#### " and one trailing ".".
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace optiq::eval::gsm8k {

struct Problem {
  std::string question;  // the word problem
  std::string answer;    // the reference solution: reasoning lines, then "#### N"
};

// The prompt for `problem` after the exemplars (each with its full solution).
std::string build_prompt(const std::vector<Problem>& exemplars, const Problem& problem);

// Where generation stops: lm-eval's "until" list for gsm8k ("Question:", "</s>", "<|im_end|>")
// plus a blank line, which ends an answer in the exemplars' format.
const std::vector<std::string>& stop_sequences();

// The number after "#### " (strict match), or nothing when the text has none.
std::optional<std::string> extract_strict(const std::string& text);
// The last number in the text (flexible extract), or nothing.
std::optional<std::string> extract_flexible(const std::string& text);

// lm-eval's normalization before exact match: "," and "$" removed, the text up to the last
// "#### " removed, one trailing "." removed.
std::string normalize(const std::string& answer);

// The reference answer of a problem: normalize(answer).
std::string reference(const Problem& problem);

// Exact match of an extracted answer (nothing never matches) with the reference.
bool is_correct(const std::optional<std::string>& extracted, const Problem& problem);

}  // namespace optiq::eval::gsm8k
