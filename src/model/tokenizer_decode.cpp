// ids -> text, the llama.cpp way (token_to_piece + detokenize) and the Hugging Face way
// (the tokenizer.json decoder chain).
#include <cstdio>

#include "model/tokenizer.h"
#include "model/unicode.h"

namespace optiq {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";

std::string replaced(std::string s, std::string_view from, std::string_view to) {
  if (from.empty()) return s;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

std::string lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t pos = 0; pos < s.size();) {
    const size_t before = pos;
    const uint32_t cp = unicode::decode_utf8(s, pos);
    if (cp == 0xFFFD && s.substr(before, pos - before) != "\xEF\xBF\xBD") out += "\xEF\xBF\xBD";
    else out.append(s, before, pos - before);
  }
  return out;
}

int byte_value(const std::string& text) {  // "<0xNN>" -> NN, else -1
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
  unsigned v = 0;
  if (std::sscanf(text.c_str() + 3, "%2x", &v) != 1) return -1;
  return static_cast<int>(v);
}

}  // namespace

std::string Tokenizer::token_to_piece(int32_t id) const {
  if (id < 0 || id >= n_tokens()) return "";
  const TokenInfo& t = tokens[id];
  if (flavor == TokenizerFlavor::HuggingFace) return decode_hf({id}, false);
  switch (t.type) {
    case TokenType::Control:
    case TokenType::Unknown:
    case TokenType::UserDefined: return t.text;
    case TokenType::Byte: {
      const int b = byte_value(t.text);
      return b < 0 ? std::string() : std::string(1, static_cast<char>(b));
    }
    case TokenType::Normal:
      if (model == TokenizerModel::Spm || !byte_level) return replaced(t.text, kSpace, " ");
      {
        std::string out;
        for (size_t pos = 0; pos < t.text.size();) {
          const size_t before = pos;
          const int b = unicode::unicode_to_byte(unicode::decode_utf8(t.text, pos));
          if (b >= 0) {
            out += static_cast<char>(b);
          } else {  // llama.cpp marks characters outside the byte alphabet
            out += "[UNK_BYTE_0x";
            for (size_t k = before; k < pos; ++k) {
              char hex[4];
              std::snprintf(hex, sizeof hex, "%02x", static_cast<unsigned char>(t.text[k]));
              out += hex;
            }
            out += t.text + "]";
          }
        }
        return out;
      }
    default: return "";  // unused and undefined tokens print nothing
  }
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  return flavor == TokenizerFlavor::HuggingFace ? decode_hf(ids, skip_special) : decode_llama(ids, skip_special);
}

// llama.cpp's detokenize(remove_special = false, unparse_special = !skip_special).
std::string Tokenizer::decode_llama(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string text;
  bool remove_space = add_space_prefix;
  for (int32_t id : ids) {
    if (id < 0 || id >= n_tokens()) continue;
    const TokenType t = tokens[id].type;
    std::string piece;
    if (!(skip_special && (t == TokenType::Control || t == TokenType::Unknown))) piece = token_to_piece(id);
    if (remove_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    remove_space = false;
    text += piece;
  }
  if (!clean_spaces || text.empty()) return text;
  // The three clean-up passes llama.cpp applies for clean_up_tokenization_spaces models.
  std::string a;
  a += text[0];
  for (size_t i = 1; i < text.size(); ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) a.pop_back();
    a += x;
  }
  std::string b;
  b += a[0];
  for (size_t i = 1; i < a.size(); ++i) {
    const char x = a[i];
    if (x == '\'' && i + 1 < a.size() && a[i - 1] == ' ' && a[i + 1] == ' ') {
      b.pop_back();
      b += x;
      ++i;  // drop the next space
      continue;
    }
    b += x;
  }
  std::string c;
  c += b[0];
  for (size_t i = 1; i < b.size(); ++i) {
    const char x = b[i];
    if (b[i - 1] == ' ' && x == '\'' && i + 1 < b.size()) {
      const char x1 = b[i + 1];
      if (x1 == 's' || x1 == 'm') c.pop_back();
      else if (i + 2 < b.size() && ((x1 == 'r' && b[i + 2] == 'e') || (x1 == 'v' && b[i + 2] == 'e'))) c.pop_back();
    }
    c += x;
  }
  return c;
}

std::string Tokenizer::decode_hf(const std::vector<int32_t>& ids, bool skip_special) const {
  std::vector<std::string> parts;
  for (int32_t id : ids) {
    if (id < 0 || id >= n_tokens()) continue;
    if (skip_special && tokens[id].special) continue;
    parts.push_back(tokens[id].text);
  }
  for (const DecoderStep& d : decoders) {
    switch (d.kind) {
      case DecoderStep::ByteLevel: {
        std::string bytes;
        for (const std::string& p : parts) {
          std::string b;
          if (unicode::byte_level_to_bytes(p, b)) bytes += b;
          else bytes += p;
        }
        parts = {lossy(bytes)};
        break;
      }
      case DecoderStep::Replace:
        for (auto& p : parts) p = replaced(p, d.pattern, d.content);
        break;
      case DecoderStep::ByteFallback: {
        std::vector<std::string> next;
        std::string pending;
        size_t n_pending = 0;
        auto flush = [&] {
          if (!n_pending) return;
          if (unicode::is_valid_utf8(pending)) {
            next.push_back(pending);
          } else {
            std::string r;
            for (size_t k = 0; k < n_pending; ++k) r += "\xEF\xBF\xBD";
            next.push_back(r);
          }
          pending.clear();
          n_pending = 0;
        };
        for (const std::string& p : parts) {
          const int b = byte_value(p);
          if (b >= 0) {
            pending += static_cast<char>(b);
            ++n_pending;
          } else {
            flush();
            next.push_back(p);
          }
        }
        flush();
        parts = std::move(next);
        break;
      }
      case DecoderStep::Fuse: {
        std::string all;
        for (const auto& p : parts) all += p;
        parts = {all};
        break;
      }
      case DecoderStep::Strip:
        for (auto& p : parts) {
          size_t s = 0, e = p.size();
          for (size_t k = 0; k < d.start && s < e && p.compare(s, d.content.size(), d.content) == 0; ++k) s += d.content.size();
          for (size_t k = 0; k < d.stop && e >= s + d.content.size() &&
                             p.compare(e - d.content.size(), d.content.size(), d.content) == 0; ++k)
            e -= d.content.size();
          p = p.substr(s, e - s);
        }
        break;
      case DecoderStep::Metaspace:
        for (size_t i = 0; i < parts.size(); ++i) {
          parts[i] = replaced(parts[i], d.pattern, " ");
          if (i == 0 && d.prepend_first && !parts[i].empty() && parts[i][0] == ' ') parts[i].erase(0, 1);
        }
        break;
    }
  }
  std::string out;
  for (const auto& p : parts) out += p;
  return lossy(out);
}

}  // namespace optiq
