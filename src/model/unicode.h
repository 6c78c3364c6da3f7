// UTF-8 and the small pieces of Unicode the tokenizers need: decoding and encoding code points,
// and GPT-2's byte <-> printable-character map that byte-level BPE vocabularies are written in.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace optiq::unicode {

// Length of the UTF-8 sequence a lead byte announces (1 for continuation or invalid bytes),
// the rule llama.cpp uses to split text into symbols: never reads past the byte itself.
inline size_t utf8_len(unsigned char lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

// Decodes one code point at s[pos], advancing pos. Invalid or truncated sequences yield
// U+FFFD and advance by one byte.
uint32_t decode_utf8(std::string_view s, size_t& pos);
void append_utf8(std::string& out, uint32_t cp);
std::string to_utf8(uint32_t cp);
bool is_valid_utf8(std::string_view s);

// GPT-2's byte-level alphabet: each byte maps to one printable code point (printable Latin-1
// bytes to themselves, the rest to U+0100 upwards), so any byte string becomes a string of
// visible characters that a BPE vocabulary can hold.
const std::array<std::string, 256>& byte_to_unicode();
// The inverse for one code point; -1 when it is not in the alphabet.
int unicode_to_byte(uint32_t cp);
// bytes -> their byte-level characters (as UTF-8).
std::string bytes_to_byte_level(std::string_view bytes);
// byte-level characters -> bytes; false (with out unspecified) when a character is outside
// the alphabet.
bool byte_level_to_bytes(std::string_view text, std::string& out);

// Unicode White_Space (what Rust's char::is_whitespace and Python's str.isspace-ish rules use
// for lstrip/rstrip of added tokens).
bool is_whitespace(uint32_t cp);

// Canonical composition (NFC). Needs the optional tables; see unicode_nfc.cpp.
std::string nfc(std::string_view s);

}  // namespace optiq::unicode
