#include "eval/gsm8k.h"

#include "model/pretokenize.h"

namespace optiq::eval::gsm8k {

std::string build_prompt(const std::vector<Problem>& exemplars, const Problem& problem) {
  std::string out;
  for (const Problem& e : exemplars) out += "Question: " + e.question + "\nAnswer: " + e.answer + "\n\n";
  return out + "Question: " + problem.question + "\nAnswer:";
}

const std::vector<std::string>& stop_sequences() {
  static const std::vector<std::string> stops = {"Question:", "</s>", "<|im_end|>", "\n\n"};
  return stops;
}

std::optional<std::string> extract_strict(const std::string& text) {
  static const Regex re("#### (\\-?[0-9\\.\\,]+)");
  std::vector<std::pair<size_t, size_t>> hits;
  re.find_all(text, hits);
  if (hits.empty()) return std::nullopt;
  return text.substr(hits[0].first + 5, hits[0].second - hits[0].first - 5);
}

std::optional<std::string> extract_flexible(const std::string& text) {
  static const Regex re("(-?[$0-9.,]{2,})|(-?[0-9]+)");
  std::vector<std::pair<size_t, size_t>> hits;
  re.find_all(text, hits);
  if (hits.empty()) return std::nullopt;
  return text.substr(hits.back().first, hits.back().second - hits.back().first);
}

std::string normalize(const std::string& answer) {
  std::string s = answer;
  if (const size_t mark = s.rfind("#### "); mark != std::string::npos) s = s.substr(mark + 5);
  std::string out;
  for (const char c : s)
    if (c != ',' && c != '$') out += c;
  if (!out.empty() && out.back() == '.') out.pop_back();
  return out;
}

std::string reference(const Problem& problem) { return normalize(problem.answer); }

bool is_correct(const std::optional<std::string>& extracted, const Problem& problem) {
  return extracted && normalize(*extracted) == reference(problem);
}

}  // namespace optiq::eval::gsm8k
