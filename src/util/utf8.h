// UTF-8 helpers for text that is streamed out while tokens are still being decoded.
#pragma once

#include <cstddef>
#include <string_view>

namespace optiq {

// Length of the longest prefix of s that does not end inside a UTF-8 sequence, so a streamed
// piece never splits a character that byte-fallback tokens build up over several steps.
inline size_t complete_utf8_prefix(std::string_view s) {
  size_t n = s.size(), back = 0;
  while (back < n && back < 4 && (static_cast<unsigned char>(s[n - 1 - back]) & 0xC0) == 0x80) ++back;
  if (back == n) return n;
  const unsigned char lead = static_cast<unsigned char>(s[n - 1 - back]);
  const size_t need = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 1;
  return back + 1 >= need ? n : n - back - 1;
}

}  // namespace optiq
