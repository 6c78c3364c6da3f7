// Cutting ASCII whitespace (space, tab, CR, LF: JSON's and HTTP's whitespace) off the ends of a
// string view, without copying.
#pragma once

#include <string_view>

namespace optiq {

inline bool is_ascii_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

inline std::string_view trim_left(std::string_view s) {
  while (!s.empty() && is_ascii_space(s.front())) s.remove_prefix(1);
  return s;
}

inline std::string_view trim_right(std::string_view s) {
  while (!s.empty() && is_ascii_space(s.back())) s.remove_suffix(1);
  return s;
}

inline std::string_view trim(std::string_view s) { return trim_right(trim_left(s)); }

}  // namespace optiq
