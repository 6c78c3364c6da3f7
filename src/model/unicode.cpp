#include "model/unicode.h"

#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#include <vector>

namespace optiq::unicode {

uint32_t decode_utf8(std::string_view s, size_t& pos) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(pos);
  if (c < 0x80) {
    ++pos;
    return c;
  }
  size_t n = 0;
  uint32_t cp = 0, min = 0;
  if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07, min = 0x10000;
  if (n == 0 || pos + n > s.size()) {
    ++pos;
    return 0xFFFD;
  }
  for (size_t i = 1; i < n; ++i) {
    if ((b(pos + i) & 0xC0) != 0x80) {
      ++pos;
      return 0xFFFD;
    }
    cp = (cp << 6) | (b(pos + i) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++pos;
    return 0xFFFD;
  }
  pos += n;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string to_utf8(uint32_t cp) {
  std::string s;
  append_utf8(s, cp);
  return s;
}

bool is_valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    const size_t before = pos;
    const uint32_t cp = decode_utf8(s, pos);
    if (cp == 0xFFFD && !(pos - before == 3 && s.substr(before, 3) == "\xEF\xBF\xBD")) return false;
  }
  return true;
}

namespace {

struct ByteMaps {
  std::array<std::string, 256> to_unicode;
  std::array<int16_t, 512> from_unicode;  // code points < 512 only
  ByteMaps() {
    from_unicode.fill(-1);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + static_cast<uint32_t>(extra++);
      to_unicode[b] = to_utf8(cp);
      from_unicode[cp] = static_cast<int16_t>(b);
    }
  }
};

const ByteMaps& maps() {
  static const ByteMaps m;
  return m;
}

}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return maps().to_unicode; }

int unicode_to_byte(uint32_t cp) { return cp < 512 ? maps().from_unicode[cp] : -1; }

std::string bytes_to_byte_level(std::string_view bytes) {
  const auto& m = maps().to_unicode;
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) out += m[c];
  return out;
}

bool byte_level_to_bytes(std::string_view text, std::string& out) {
  bool ok = true;
  for (size_t pos = 0; pos < text.size();) {
    const int b = unicode_to_byte(decode_utf8(text, pos));
    if (b < 0) ok = false;
    else out += static_cast<char>(b);
  }
  return ok;
}

bool is_whitespace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// NFC through ICU (UTF-8 -> UTF-16 -> normalize -> UTF-8). Invalid UTF-8 is passed through
// unchanged: Hugging Face only ever normalizes valid strings.
std::string nfc(std::string_view s) {
  bool ascii = true;
  for (unsigned char c : s)
    if (c >= 0x80) {
      ascii = false;
      break;
    }
  if (ascii) return std::string(s);
  UErrorCode err = U_ZERO_ERROR;
  const UNormalizer2* norm = unorm2_getNFCInstance(&err);
  if (U_FAILURE(err)) return std::string(s);
  int32_t n16 = 0;
  u_strFromUTF8(nullptr, 0, &n16, s.data(), static_cast<int32_t>(s.size()), &err);
  if (err != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(err)) return std::string(s);
  err = U_ZERO_ERROR;
  std::vector<UChar> in(n16 + 1);
  u_strFromUTF8(in.data(), n16 + 1, nullptr, s.data(), static_cast<int32_t>(s.size()), &err);
  if (U_FAILURE(err)) return std::string(s);
  if (unorm2_isNormalized(norm, in.data(), n16, &err) && U_SUCCESS(err)) return std::string(s);
  err = U_ZERO_ERROR;
  std::vector<UChar> out(n16 * 3 + 16);
  const int32_t n_out = unorm2_normalize(norm, in.data(), n16, out.data(), static_cast<int32_t>(out.size()), &err);
  if (U_FAILURE(err)) return std::string(s);
  std::string result(static_cast<size_t>(n_out) * 3 + 4, '\0');
  int32_t n8 = 0;
  u_strToUTF8(result.data(), static_cast<int32_t>(result.size()), &n8, out.data(), n_out, &err);
  if (U_FAILURE(err)) return std::string(s);
  result.resize(n8);
  return result;
}

}  // namespace optiq::unicode
