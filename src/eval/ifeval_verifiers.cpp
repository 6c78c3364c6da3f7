// One verifier per IFEval instruction id, each the rule of the upstream class's
// check_following (instructions.py), written from its description.
#include <functional>
#include <map>
#include <stdexcept>

#include "eval/ifeval.h"
#include "eval/ifeval_text.h"
#include "model/pretokenize.h"

namespace optiq::eval::ifeval {
namespace {

using nlohmann::json;
using Verifier = std::function<bool(const json& kw, const std::string& response)>;

const json& arg(const json& kw, const char* name) {
  if (!kw.is_object() || !kw.contains(name) || kw[name].is_null())
    throw std::invalid_argument(std::string("the instruction needs the argument \"") + name + "\"");
  return kw[name];
}
std::string str_arg(const json& kw, const char* name) { return arg(kw, name).get<std::string>(); }
int64_t int_arg(const json& kw, const char* name) { return arg(kw, name).get<int64_t>(); }

// "less than" -> actual < n; "at least" -> actual >= n (the only two IFEval relations).
bool compare(const std::string& relation, int64_t actual, int64_t n) {
  if (relation == "less than") return actual < n;
  if (relation == "at least") return actual >= n;
  throw std::invalid_argument("relation \"" + relation + "\" is neither \"less than\" nor \"at least\"");
}

size_t count_matches(const std::string& pattern, const std::string& text) {
  const Regex re(pattern);
  std::vector<std::pair<size_t, size_t>> hits;
  re.find_all(text, hits);
  return hits.size();
}

std::vector<std::string> matches(const std::string& pattern, const std::string& text) {
  const Regex re(pattern);
  std::vector<std::pair<size_t, size_t>> hits;
  re.find_all(text, hits);
  std::vector<std::string> out;
  for (const auto& [b, e] : hits) out.push_back(text.substr(b, e - b));
  return out;
}

std::string strip(const std::string& s, const std::string& chars = " \t\n\r\f\v") {
  const size_t a = s.find_first_not_of(chars);
  if (a == std::string::npos) return "";
  return s.substr(a, s.find_last_not_of(chars) - a + 1);
}

// Python's str.split("sep").
std::vector<std::string> split_on(const std::string& s, const std::string& sep) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t p; (p = s.find(sep, start)) != std::string::npos; start = p + sep.size()) out.push_back(s.substr(start, p - start));
  out.push_back(s.substr(start));
  return out;
}

// Pieces of a split where empty pieces are allowed only at both ends; -1 when one is inside.
int64_t count_nonempty_pieces(const std::vector<std::string>& pieces) {
  int64_t n = static_cast<int64_t>(pieces.size());
  for (size_t i = 0; i < pieces.size(); ++i)
    if (strip(pieces[i]).empty()) {
      if (i != 0 && i + 1 != pieces.size()) return -1;
      --n;
    }
  return n;
}

const std::map<std::string, Verifier>& registry() {
  static const std::map<std::string, Verifier> r = {
      {"keywords:existence",
       [](const json& kw, const std::string& v) {
         for (const json& k : arg(kw, "keywords"))
           if (count_matches("(?i)" + k.get<std::string>(), v) == 0) return false;
         return true;
       }},
      {"keywords:frequency",
       [](const json& kw, const std::string& v) {
         return compare(str_arg(kw, "relation"), static_cast<int64_t>(count_matches("(?i)" + str_arg(kw, "keyword"), v)),
                        int_arg(kw, "frequency"));
       }},
      {"keywords:forbidden_words",
       [](const json& kw, const std::string& v) {
         for (const json& w : arg(kw, "forbidden_words"))
           if (count_matches("(?i)\\b" + w.get<std::string>() + "\\b", v) > 0) return false;
         return true;
       }},
      {"keywords:letter_frequency",
       // Upstream replaces a "letter" outside a-z (the data has "#" and "!") by a random letter;
       // the character asked for is counted here.
       [](const json& kw, const std::string& v) {
         const std::string letter = ascii_lower(strip(str_arg(kw, "letter")));
         const std::string text = ascii_lower(v);
         int64_t n = 0;
         for (size_t p = letter.empty() ? std::string::npos : text.find(letter); p != std::string::npos; p = text.find(letter, p + letter.size()))
           ++n;
         return compare(str_arg(kw, "let_relation"), n, int_arg(kw, "let_frequency"));
       }},
      {"language:response_language",
       [](const json& kw, const std::string& v) { return detect_language(v) == str_arg(kw, "language"); }},
      {"length_constraints:number_sentences",
       [](const json& kw, const std::string& v) {
         return compare(str_arg(kw, "relation"), static_cast<int64_t>(split_sentences(v).size()), int_arg(kw, "num_sentences"));
       }},
      {"length_constraints:number_paragraphs",
       [](const json& kw, const std::string& v) {
         // Paragraphs are separated by the markdown divider "***".
         const Regex divider("\\s?\\*\\*\\*\\s?");
         std::vector<std::pair<size_t, size_t>> hits;
         divider.find_all(v, hits);
         std::vector<std::string> pieces;
         size_t start = 0;
         for (const auto& [b, e] : hits) {
           pieces.push_back(v.substr(start, b - start));
           start = e;
         }
         pieces.push_back(v.substr(start));
         return count_nonempty_pieces(pieces) == int_arg(kw, "num_paragraphs");
       }},
      {"length_constraints:number_words",
       [](const json& kw, const std::string& v) {
         return compare(str_arg(kw, "relation"), count_words(v), int_arg(kw, "num_words"));
       }},
      {"length_constraints:nth_paragraph_first_word",
       [](const json& kw, const std::string& v) {
         // Paragraphs here are separated by blank lines ("\n\n").
         const std::vector<std::string> paragraphs = split_on(v, "\n\n");
         int64_t n = static_cast<int64_t>(paragraphs.size());
         for (const std::string& p : paragraphs)
           if (strip(p).empty()) --n;
         const int64_t nth = int_arg(kw, "nth_paragraph");
         if (nth > n || nth < 1) return false;
         const std::string paragraph = strip(paragraphs[static_cast<size_t>(nth - 1)]);
         if (paragraph.empty()) return false;
         std::string word = paragraph.substr(0, paragraph.find_first_of(" \t\n\r\f\v"));
         word = word.substr(std::min(word.size(), word.find_first_not_of("'")));
         word = word.substr(std::min(word.size(), word.find_first_not_of("\"")));
         std::string first;
         for (const char c : word) {
           if (c == '.' || c == ',' || c == '?' || c == '!' || c == '\'' || c == '"') break;
           first += c;
         }
         return n == int_arg(kw, "num_paragraphs") && ascii_lower(first) == ascii_lower(str_arg(kw, "first_word"));
       }},
      {"detectable_content:number_placeholders",
       [](const json& kw, const std::string& v) {
         return static_cast<int64_t>(count_matches("\\[.*?\\]", v)) >= int_arg(kw, "num_placeholders");
       }},
      {"detectable_content:postscript",
       [](const json& kw, const std::string& v) {
         const std::string marker = str_arg(kw, "postscript_marker");
         std::string pattern;
         if (marker == "P.P.S") pattern = "(?m)\\s*p\\.\\s?p\\.\\s?s.*$";
         else if (marker == "P.S.") pattern = "(?m)\\s*p\\.\\s?s\\..*$";
         else pattern = "(?m)\\s*" + ascii_lower(marker) + ".*$";
         return count_matches(pattern, ascii_lower(v)) > 0;
       }},
      {"detectable_format:number_bullet_lists",
       [](const json& kw, const std::string& v) {
         const size_t n = count_matches("(?m)^\\s*\\*[^\\*].*$", v) + count_matches("(?m)^\\s*-.*$", v);
         return static_cast<int64_t>(n) == int_arg(kw, "num_bullets");
       }},
      {"detectable_format:constrained_response",
       [](const json&, const std::string& v) {
         for (const char* option : {"My answer is yes.", "My answer is no.", "My answer is maybe."})
           if (v.find(option) != std::string::npos) return true;
         return false;
       }},
      {"detectable_format:number_highlighted_sections",
       [](const json& kw, const std::string& v) {
         int64_t n = 0;
         for (const std::string& h : matches("\\*[^\\n\\*]*\\*", v))
           if (!strip(strip(h, "*")).empty()) ++n;
         for (const std::string& h : matches("\\*\\*[^\\n\\*]*\\*\\*", v))
           if (!strip(h.substr(2, h.size() - 4)).empty()) ++n;
         return n >= int_arg(kw, "num_highlights");
       }},
      {"detectable_format:multiple_sections",
       [](const json& kw, const std::string& v) {
         const std::string pattern = "\\s?" + str_arg(kw, "section_spliter") + "\\s?\\d+\\s?";
         return static_cast<int64_t>(count_matches(pattern, v)) >= int_arg(kw, "num_sections");
       }},
      {"detectable_format:json_format",
       [](const json&, const std::string& v) {
         std::string s = strip(v);
         for (const char* prefix : {"```json", "```Json", "```JSON", "```"})
           if (s.starts_with(prefix)) {
             s = s.substr(std::char_traits<char>::length(prefix));
             break;
           }
         if (s.ends_with("```")) s = s.substr(0, s.size() - 3);
         return json::accept(strip(s));
       }},
      {"detectable_format:title",
       [](const json&, const std::string& v) {
         for (const std::string& t : matches("<<[^\\n]+>>", v))
         {
           // Python: title.lstrip("<").rstrip(">").strip()
           std::string inner = t.substr(std::min(t.size(), t.find_first_not_of('<')));
           inner = inner.substr(0, inner.find_last_not_of('>') + 1);
           if (!strip(inner).empty()) return true;
         }
         return false;
       }},
      {"combination:two_responses",
       [](const json&, const std::string& v) {
         std::vector<std::string> valid;
         const std::vector<std::string> pieces = split_on(v, "******");
         for (size_t i = 0; i < pieces.size(); ++i) {
           if (strip(pieces[i]).empty()) {
             if (i != 0 && i + 1 != pieces.size()) return false;
           } else {
             valid.push_back(pieces[i]);
           }
         }
         return valid.size() == 2 && strip(valid[0]) != strip(valid[1]);
       }},
      {"combination:repeat_prompt",
       [](const json& kw, const std::string& v) {
         return ascii_lower(strip(v)).starts_with(ascii_lower(strip(str_arg(kw, "prompt_to_repeat"))));
       }},
      {"startend:end_checker",
       [](const json& kw, const std::string& v) {
         return ascii_lower(strip(strip(v), "\"")).ends_with(ascii_lower(strip(str_arg(kw, "end_phrase"))));
       }},
      {"startend:quotation",
       [](const json&, const std::string& v) {
         const std::string s = strip(v);
         return s.size() > 1 && s.front() == '"' && s.back() == '"';
       }},
      {"change_case:capital_word_frequency",
       [](const json& kw, const std::string& v) {
         int64_t n = 0;
         for (const std::string& w : word_tokens(v))
           if (is_upper(w)) ++n;
         return compare(str_arg(kw, "capital_relation"), n, int_arg(kw, "capital_frequency"));
       }},
      {"change_case:english_capital",
       [](const json&, const std::string& v) { return is_upper(v) && detect_language(v) == "en"; }},
      {"change_case:english_lowercase",
       [](const json&, const std::string& v) { return is_lower(v) && detect_language(v) == "en"; }},
      {"punctuation:no_comma", [](const json&, const std::string& v) { return v.find(',') == std::string::npos; }},
  };
  return r;
}

}  // namespace

bool is_supported(const std::string& instruction_id) { return registry().count(instruction_id) > 0; }

std::vector<std::string> supported_instructions() {
  std::vector<std::string> out;
  for (const auto& [id, v] : registry()) out.push_back(id);
  return out;
}

bool check_instruction(const std::string& id, const json& kwargs, const std::string& response) {
  const auto it = registry().find(id);
  if (it == registry().end()) throw std::invalid_argument("unknown IFEval instruction \"" + id + "\"");
  return it->second(kwargs, response);
}

}  // namespace optiq::eval::ifeval
