#include "eval/ifeval.h"

#include <algorithm>

namespace optiq::eval::ifeval {
namespace {

std::string strip(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

std::string join_lines(const std::vector<std::string>& lines, size_t from, size_t to) {
  std::string out;
  for (size_t i = from; i < to; ++i) {
    if (i > from) out += '\n';
    out += lines[i];
  }
  return out;
}

std::string without_stars(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '*'), s.end());
  return s;
}

// The eight variants the loose rule tries (upstream order).
std::vector<std::string> loose_variants(const std::string& response) {
  std::vector<std::string> lines;
  size_t start = 0;
  for (size_t nl; (nl = response.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(response.substr(start, nl - start));
  lines.push_back(response.substr(start));
  const size_t n = lines.size();
  const std::string remove_first = strip(join_lines(lines, std::min<size_t>(1, n), n));
  const std::string remove_last = strip(join_lines(lines, 0, n > 0 ? n - 1 : 0));
  const std::string remove_both = n >= 2 ? strip(join_lines(lines, 1, n - 1)) : std::string();
  return {response,
          without_stars(response),
          remove_first,
          remove_last,
          remove_both,
          without_stars(remove_first),
          without_stars(remove_last),
          without_stars(remove_both)};
}

}  // namespace

bool PromptResult::strict_all() const { return std::all_of(strict.begin(), strict.end(), [](bool b) { return b; }); }
bool PromptResult::loose_all() const { return std::all_of(loose.begin(), loose.end(), [](bool b) { return b; }); }

PromptResult evaluate(const Prompt& prompt, const std::string& response) {
  PromptResult r;
  const std::vector<std::string> variants = loose_variants(response);
  for (size_t k = 0; k < prompt.instruction_ids.size(); ++k) {
    const std::string& id = prompt.instruction_ids[k];
    const nlohmann::json& kw = prompt.kwargs[k];
    r.strict.push_back(!strip(response).empty() && check_instruction(id, kw, response));
    bool loose = false;
    for (const std::string& v : variants)
      if (!strip(v).empty() && check_instruction(id, kw, v)) {
        loose = true;
        break;
      }
    r.loose.push_back(loose);
  }
  return r;
}

}  // namespace optiq::eval::ifeval
