#include "eval/ifeval_text.h"

#include <unicode/uchar.h>

#include <algorithm>
#include <map>
#include <set>

#include "model/pretokenize.h"
#include "model/unicode.h"

namespace optiq::eval::ifeval {

int count_words(const std::string& text) {
  static const Regex word("\\w+");
  std::vector<std::pair<size_t, size_t>> hits;
  word.find_all(text, hits);
  return static_cast<int>(hits.size());
}

std::vector<std::string> word_tokens(const std::string& text) {
  static const Regex pieces("\\.\\.\\.|[,;:?!\"()\\[\\]{}]|[^\\s,;:?!\"()\\[\\]{}]+?(?=\\.\\.\\.|[\\s,;:?!\"()\\[\\]{}]|$)");
  static const Regex clitic("(?i)(?:n't|'s|'re|'ve|'ll|'d|'m)$");
  std::vector<std::pair<size_t, size_t>> hits;
  pieces.find_all(text, hits);
  std::vector<std::string> out;
  for (const auto& [b, e] : hits) {
    std::string word = text.substr(b, e - b);
    std::vector<std::pair<size_t, size_t>> tail;
    clitic.find_all(word, tail);
    if (!tail.empty() && tail.back().first > 0) {
      out.push_back(word.substr(0, tail.back().first));
      out.push_back(word.substr(tail.back().first));
    } else {
      out.push_back(std::move(word));
    }
  }
  return out;
}

namespace {

bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_space(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v'; }

// The word (letters only) that ends just before position i.
std::string word_before(const std::string& t, size_t i) {
  size_t b = i;
  while (b > 0 && is_alpha(t[b - 1])) --b;
  return t.substr(b, i - b);
}

// Whether the "." at i does not end a sentence.
bool protected_period(const std::string& t, size_t i) {
  static const std::set<std::string> titles = {"Mr", "St", "Mrs", "Ms", "Dr", "Prof", "Capt", "Cpt", "Lt", "Mt"};
  static const std::set<std::string> suffixes = {"Inc", "Ltd", "Jr", "Sr", "Co"};
  static const std::vector<std::string> domains = {"com", "net", "org", "io", "gov", "edu", "me"};
  const std::string w = word_before(t, i);
  const size_t wstart = i - w.size();
  const char before = wstart > 0 ? t[wstart - 1] : ' ';
  if (titles.count(w)) return true;
  if (suffixes.count(w) && is_space(before)) return true;
  // A single letter after a space or another "X." (initials, acronyms, e.g.).
  if (w.size() == 1 && (is_space(before) || before == '.')) return true;
  if (i > 0 && i + 1 < t.size() && is_digit(t[i - 1]) && is_digit(t[i + 1])) return true;
  for (const std::string& d : domains)
    if (t.compare(i + 1, d.size(), d) == 0) return true;
  return false;
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && is_space(s[a])) ++a;
  while (b > a && is_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

}  // namespace

std::vector<std::string> split_sentences(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    cur += c == '\n' ? ' ' : c;
    bool stop = false;
    if (c == '?' || c == '!') {
      stop = true;
    } else if (c == '.') {
      size_t run = i;
      while (run + 1 < text.size() && text[run + 1] == '.') ++run;
      if (run > i) {
        cur += text.substr(i + 1, run - i);
        i = run;
        stop = true;
      } else {
        stop = !protected_period(text, i);
      }
    }
    if (stop) {
      // A closing quote right after the mark belongs to the sentence it ends.
      if (i + 1 < text.size() && text[i + 1] == '"') cur += text[++i];
      out.push_back(trim(cur));
      cur.clear();
    }
  }
  out.push_back(trim(cur));
  if (!out.empty() && out.back().empty()) out.pop_back();
  return out;
}

namespace {
template <class Pred>
bool any_cp(const std::string& text, Pred pred) {
  size_t pos = 0;
  while (pos < text.size())
    if (pred(static_cast<UChar32>(unicode::decode_utf8(text, pos)))) return true;
  return false;
}
}  // namespace

bool is_upper(const std::string& text) {
  return any_cp(text, [](UChar32 c) { return u_isUUppercase(c) || u_istitle(c); }) &&
         !any_cp(text, [](UChar32 c) { return u_isULowercase(c); });
}

bool is_lower(const std::string& text) {
  return any_cp(text, [](UChar32 c) { return u_isULowercase(c); }) &&
         !any_cp(text, [](UChar32 c) { return u_isUUppercase(c) || u_istitle(c); });
}

std::string ascii_lower(std::string text) {
  for (char& c : text)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return text;
}

std::string detect_language(const std::string& text) {
  std::map<std::string, int> scripts;  // script name -> letters
  int vietnamese = 0, latin = 0;
  bool persian_letters = false;
  size_t pos = 0;
  while (pos < text.size()) {
    const UChar32 c = static_cast<UChar32>(unicode::decode_utf8(text, pos));
    // Letters, and in the other scripts their combining vowel signs too (they carry most of an
    // Indic word).
    const int8_t type = u_charType(c);
    if (!u_isalpha(c) && !(c >= 0x300 && (type == U_NON_SPACING_MARK || type == U_COMBINING_SPACING_MARK))) continue;
    if (c < 0x250) {
      ++latin;
      // Letters Vietnamese uses and English/French/German/Spanish do not: ă đ ơ ư (any case).
      if (c == 0x103 || c == 0x102 || c == 0x111 || c == 0x110 || c == 0x1A1 || c == 0x1A0 || c == 0x1B0 || c == 0x1AF)
        ++vietnamese;
    } else if (c >= 0x1EA0 && c <= 0x1EF9) {
      ++latin;
      ++vietnamese;  // Latin Extended Additional: Vietnamese tone-marked vowels
    } else if (c >= 0x600 && c <= 0x6FF) {
      ++scripts["arabic"];
      if (c == 0x67E || c == 0x686 || c == 0x698 || c == 0x6AF || c == 0x6CC || c == 0x6A9) persian_letters = true;
    } else if (c >= 0x900 && c <= 0x97F) {
      ++scripts["devanagari"];
    } else if (c >= 0x980 && c <= 0x9FF) {
      ++scripts["bn"];
    } else if (c >= 0xA00 && c <= 0xA7F) {
      ++scripts["pa"];
    } else if (c >= 0xA80 && c <= 0xAFF) {
      ++scripts["gu"];
    } else if (c >= 0xB80 && c <= 0xBFF) {
      ++scripts["ta"];
    } else if (c >= 0xC00 && c <= 0xC7F) {
      ++scripts["te"];
    } else if (c >= 0xC80 && c <= 0xCFF) {
      ++scripts["kn"];
    } else if (c >= 0xE00 && c <= 0xE7F) {
      ++scripts["th"];
    } else if (c >= 0x400 && c <= 0x4FF) {
      ++scripts["ru"];
    } else if (c >= 0x370 && c <= 0x3FF) {
      ++scripts["el"];
    } else if (c >= 0x590 && c <= 0x5FF) {
      ++scripts["he"];
    } else if (c >= 0xAC00 && c <= 0xD7AF) {
      ++scripts["ko"];
    } else if (c >= 0x3040 && c <= 0x30FF) {
      ++scripts["ja"];
    } else if (c >= 0x4E00 && c <= 0x9FFF) {
      ++scripts["zh"];
    }
  }
  std::string best;
  int best_n = latin;
  for (const auto& [name, n] : scripts)
    if (n > best_n) {
      best = name;
      best_n = n;
    }
  if (best_n == 0) return "und";
  if (best == "arabic") return persian_letters ? "fa" : "ar";
  if (best == "devanagari") {
    auto count = [&](std::initializer_list<const char*> words) {
      int n = 0;
      for (const char* w : words)
        for (size_t p = text.find(w); p != std::string::npos; p = text.find(w, p + 1)) ++n;
      return n;
    };
    const int marathi = count({"आहे", "आणि", "च्या", "मध्ये", "नाही", "होते"});
    const int hindi = count({"है", "और", "के ", "में", "नहीं", "था"});
    return marathi > hindi ? "mr" : "hi";
  }
  if (!best.empty()) return best;
  if (vietnamese * 20 >= latin) return "vi";
  static const std::set<std::string> english = {"the", "and", "is", "of", "to", "in", "a", "that", "it", "for",
                                                "you", "with", "on", "are", "this", "be", "as", "i", "your", "was"};
  static const Regex word("[A-Za-z]+");
  std::vector<std::pair<size_t, size_t>> hits;
  word.find_all(text, hits);
  int function_words = 0;
  for (const auto& [b, e] : hits)
    if (english.count(ascii_lower(text.substr(b, e - b)))) ++function_words;
  if (!hits.empty() && function_words * 12 >= static_cast<int>(hits.size())) return "en";
  return "und";
}

}  // namespace optiq::eval::ifeval
