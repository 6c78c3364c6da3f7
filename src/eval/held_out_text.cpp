#include "eval/held_out_text.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

#include "eval/jsonl.h"
#include "util/error.h"

#ifndef OPTIQ_SOURCE_DIR
#define OPTIQ_SOURCE_DIR "."
#endif

namespace optiq::eval {
namespace {

constexpr size_t kGsm8kItems = 60;
constexpr size_t kHumanEvalItems = 25;
constexpr size_t kMmluFiles = 20;

std::string read_bytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), std::nullopt, "cannot be opened (the held-out text needs it; or give --text FILE)");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Python's text-mode reading: "\r\n" and lone "\r" become "\n".
std::string universal_newlines(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '\r') {
      out += s[i];
      continue;
    }
    out += '\n';
    if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
  }
  return out;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = std::min(text.find('\n', pos), text.size());
    out.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

nlohmann::json parse_line(const std::filesystem::path& path, const std::string& line, size_t number) {
  nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object())
    throw InputError(path.string(), std::nullopt, "line " + std::to_string(number) + " is not a JSON object");
  return j;
}

std::string required_string(const std::filesystem::path& path, const nlohmann::json& j, const char* key, size_t number) {
  if (!j.contains(key) || !j[key].is_string())
    throw InputError(path.string(), std::nullopt, "line " + std::to_string(number) + " has no string '" + key + "'");
  return j[key].get<std::string>();
}

}  // namespace

std::filesystem::path default_shared_dir() { return std::filesystem::path(OPTIQ_SOURCE_DIR) / ".." / "shared"; }

std::string held_out_text(const std::filesystem::path& shared_dir) {
  std::vector<std::string> parts;
  const auto gsm8k = shared_dir / "data/gsm8k/train.jsonl";
  const auto gsm8k_lines = lines(read_bytes(gsm8k));
  for (size_t i = 0; i < gsm8k_lines.size() && i < kGsm8kItems; ++i) {
    const nlohmann::json j = parse_line(gsm8k, gsm8k_lines[i], i + 1);
    parts.push_back("Question: " + required_string(gsm8k, j, "question", i + 1) + "\nAnswer: " +
                    required_string(gsm8k, j, "answer", i + 1) + "\n");
  }
  const auto humaneval = shared_dir / "data/humaneval/HumanEval-first40.jsonl.gz";
  if (!std::filesystem::exists(humaneval)) read_bytes(humaneval);  // the error message
  const auto humaneval_lines = lines(read_maybe_gzip(humaneval));
  for (size_t i = 0; i < humaneval_lines.size() && i < kHumanEvalItems; ++i) {
    const nlohmann::json j = parse_line(humaneval, humaneval_lines[i], i + 1);
    parts.push_back(required_string(humaneval, j, "prompt", i + 1) + required_string(humaneval, j, "canonical_solution", i + 1) + "\n");
  }
  const auto mmlu = shared_dir / "data/mmlu/dev";
  std::vector<std::filesystem::path> csvs;
  if (std::filesystem::is_directory(mmlu))
    for (const auto& e : std::filesystem::directory_iterator(mmlu))
      if (e.path().extension() == ".csv") csvs.push_back(e.path());
  if (csvs.empty()) throw InputError(mmlu.string(), std::nullopt, "holds no .csv file (the held-out text needs MMLU's dev split; or give --text FILE)");
  std::sort(csvs.begin(), csvs.end());
  for (size_t i = 0; i < csvs.size() && i < kMmluFiles; ++i) parts.push_back(universal_newlines(read_bytes(csvs[i])));
  std::string text;
  for (size_t i = 0; i < parts.size(); ++i) text += (i ? "\n" : "") + parts[i];
  return text;
}

}  // namespace optiq::eval
