#include "eval/mmlu.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

#include "util/error.h"

namespace optiq::eval::mmlu {
namespace {

using Record = std::vector<std::string>;

// RFC 4180: fields separated by commas, quoted fields may hold commas, newlines and "" for ".
std::vector<Record> parse_records(const std::string& text, const std::string& file) {
  std::vector<Record> records;
  Record rec;
  std::string field;
  bool quoted = false, any = false;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c == '"') quoted = false;
      else field += c;
      ++i;
      continue;
    }
    if (c == '"' && field.empty()) {
      quoted = any = true;
    } else if (c == ',') {
      rec.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\n' || c == '\r') {
      if (any || !field.empty()) {
        rec.push_back(std::move(field));
        records.push_back(std::move(rec));
      }
      rec.clear();
      field.clear();
      any = false;
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
    } else {
      field += c;
      any = true;
    }
    ++i;
  }
  if (quoted) throw InputError(file, text.size(), "a quoted field is not closed before the end of the file");
  if (any || !field.empty()) {
    rec.push_back(std::move(field));
    records.push_back(std::move(rec));
  }
  return records;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

int parse_answer(const std::string& raw, const std::string& file, size_t record) {
  std::string a = raw;
  while (!a.empty() && std::isspace(static_cast<unsigned char>(a.back()))) a.pop_back();
  while (!a.empty() && std::isspace(static_cast<unsigned char>(a.front()))) a.erase(0, 1);
  if (a.size() == 1 && a[0] >= 'A' && a[0] <= 'D') return a[0] - 'A';
  if (a.size() == 1 && a[0] >= 'a' && a[0] <= 'd') return a[0] - 'a';
  if (a.size() == 1 && a[0] >= '0' && a[0] <= '3') return a[0] - '0';
  throw InputError(file, std::nullopt,
                   "record " + std::to_string(record) + ": the answer is \"" + raw + "\", expected A-D or 0-3");
}

}  // namespace

std::string subject_of(const std::filesystem::path& file) {
  std::string stem = file.stem().string();
  for (const char* suffix : {"_dev", "_val", "_test"})
    if (stem.size() > std::char_traits<char>::length(suffix) && stem.ends_with(suffix))
      return stem.substr(0, stem.size() - std::char_traits<char>::length(suffix));
  return stem;
}

std::string subject_title(const std::string& subject) {
  std::string s = subject;
  std::replace(s.begin(), s.end(), '_', ' ');
  return s;
}

std::vector<Question> parse_csv(const std::string& text, const std::string& file, const std::string& subject) {
  std::vector<Record> records = parse_records(text, file);
  // Column indices of question, A..D and answer; headerless files are in that order.
  size_t col_q = 0, col_ans = 5;
  std::array<size_t, 4> col_choice = {1, 2, 3, 4};
  size_t first = 0;
  if (!records.empty() && lower(records[0][0]) == "question") {
    std::map<std::string, size_t> by_name;
    for (size_t c = 0; c < records[0].size(); ++c) by_name[lower(records[0][c])] = c;
    auto need = [&](std::initializer_list<const char*> names) {
      for (const char* n : names)
        if (auto it = by_name.find(n); it != by_name.end()) return it->second;
      throw InputError(file, std::nullopt, std::string("the header has no \"") + *names.begin() + "\" column");
    };
    col_ans = need({"answer", "target", "label"});
    const char* letters[4][3] = {{"a", "choice_a", "option_a"}, {"b", "choice_b", "option_b"},
                                 {"c", "choice_c", "option_c"}, {"d", "choice_d", "option_d"}};
    for (int k = 0; k < 4; ++k) col_choice[k] = need({letters[k][0], letters[k][1], letters[k][2]});
    first = 1;
  }
  const size_t need_cols = std::max({col_q, col_ans, col_choice[0], col_choice[1], col_choice[2], col_choice[3]}) + 1;
  std::vector<Question> out;
  for (size_t r = first; r < records.size(); ++r) {
    const Record& rec = records[r];
    if (rec.size() < need_cols)
      throw InputError(file, std::nullopt,
                       "record " + std::to_string(r + 1) + ": " + std::to_string(rec.size()) + " fields, expected " +
                           std::to_string(need_cols) + " (question, A, B, C, D, answer)");
    Question q;
    q.subject = subject;
    q.question = rec[col_q];
    for (int k = 0; k < 4; ++k) q.choices[k] = rec[col_choice[k]];
    q.answer = parse_answer(rec[col_ans], file, r + 1);
    q.line = static_cast<int>(r + 1);
    out.push_back(std::move(q));
  }
  return out;
}

std::vector<Question> load(const std::filesystem::path& path) {
  std::vector<std::filesystem::path> files;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(path))
      if (e.path().extension() == ".csv") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) throw InputError(path.string(), std::nullopt, "the folder has no .csv files");
  } else {
    files.push_back(path);
  }
  std::vector<Question> out;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) throw InputError(f.string(), std::nullopt, "cannot open the file");
    std::ostringstream s;
    s << in.rdbuf();
    std::vector<Question> qs = parse_csv(s.str(), f.string(), subject_of(f));
    out.insert(out.end(), std::make_move_iterator(qs.begin()), std::make_move_iterator(qs.end()));
  }
  return out;
}

namespace {
std::string format_question(const Question& q) {
  std::string stem = q.question;
  while (!stem.empty() && std::isspace(static_cast<unsigned char>(stem.back()))) stem.pop_back();
  size_t lead = 0;
  while (lead < stem.size() && std::isspace(static_cast<unsigned char>(stem[lead]))) ++lead;
  std::string out = stem.substr(lead);
  for (int k = 0; k < 4; ++k) out += std::string("\n") + static_cast<char>('A' + k) + ". " + q.choices[k];
  return out + "\nAnswer:";
}
}  // namespace

std::string build_prompt(const std::vector<Question>& exemplars, const Question& q) {
  std::string out = "The following are multiple choice questions (with answers) about " + subject_title(q.subject) + ".\n\n";
  for (const Question& e : exemplars)
    out += format_question(e) + " " + static_cast<char>('A' + e.answer) + "\n\n";
  return out + format_question(q);
}

const std::array<std::string, 4>& choice_continuations() {
  static const std::array<std::string, 4> c = {" A", " B", " C", " D"};
  return c;
}

int predict(const std::array<double, 4>& logprobs) {
  return static_cast<int>(std::max_element(logprobs.begin(), logprobs.end()) - logprobs.begin());
}

}  // namespace optiq::eval::mmlu
