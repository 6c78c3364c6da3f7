// MMLU as Hendrycks et al. evaluate it (and lm-evaluation-harness's "mmlu" tasks): per subject a
// header "The following are multiple choice questions (with answers) about <subject>.\n\n", k
// exemplars from the dev split, each "<question>\nA. <a>\nB. <b>\nC. <c>\nD. <d>\nAnswer: <X>\n\n",
// then the question with "Answer:" open. The prediction is the option letter whose continuation
// " A" .. " D" the model gives the highest log-probability.
#pragma once

#include <array>
#include <filesystem>
#include <string>
#include <vector>

namespace optiq::eval::mmlu {

struct Question {
  std::string subject;                 // e.g. "abstract_algebra" (from the file name)
  std::string question;                // the stem
  std::array<std::string, 4> choices;  // options A..D
  int answer = 0;                      // 0..3: index of the right option
  int line = 0;                        // 1-based CSV record of the file, for messages
};

// The subject of a file name "<subject>_dev.csv" / "_val.csv" / "_test.csv" (else the stem).
std::string subject_of(const std::filesystem::path& file);

// "abstract_algebra" -> "abstract algebra".
std::string subject_title(const std::string& subject);

// Parses one MMLU CSV: headerless rows "question,A,B,C,D,X" with X a letter A-D, or a header row
// naming the columns (question, A/B/C/D or choice columns, answer) with the answer a letter or
// 0-3. RFC 4180 quoting. Throws InputError(file, -, "record N: ...") on a malformed row.
std::vector<Question> parse_csv(const std::string& text, const std::string& file, const std::string& subject);

// One file, or every *.csv in a folder (sorted by name).
std::vector<Question> load(const std::filesystem::path& path);

// The k-shot prompt ending in "Answer:".
std::string build_prompt(const std::vector<Question>& exemplars, const Question& q);

// The continuations compared: " A", " B", " C", " D".
const std::array<std::string, 4>& choice_continuations();

// Index of the largest log-probability (the first on ties, as numpy's argmax).
int predict(const std::array<double, 4>& logprobs);

}  // namespace optiq::eval::mmlu
