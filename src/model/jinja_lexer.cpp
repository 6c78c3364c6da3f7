#include "model/jinja_lexer.h"

#include <algorithm>
#include <cstring>

#include "model/jinja_value.h"

namespace optiq::jinja {

bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
         c == 0x202f || c == 0x205f || c == 0x3000;
}

namespace {

// One UTF-8 character at s[i]: its code point and byte length (1 for an invalid byte).
std::pair<char32_t, size_t> char_at(const std::string& s, size_t i) {
  const size_t n = std::min<size_t>(4, s.size() - i);
  const std::u32string one = decode_utf8(s.substr(i, n));
  const char32_t c = one[0];
  if (c >= 0xdc80 && c <= 0xdcff) return {c, 1};
  std::string enc;
  append_utf8(enc, c);
  return {c, enc.size()};
}

size_t skip_python_space(const std::string& s, size_t i) {
  while (i < s.size()) {
    auto [c, len] = char_at(s, i);
    if (!is_python_space(c)) break;
    i += len;
  }
  return i;
}

std::string rstrip_python(const std::string& s) {
  const std::u32string cps = decode_utf8(s);
  size_t end = cps.size();
  while (end > 0 && is_python_space(cps[end - 1])) --end;
  return encode_utf8(cps.substr(0, end));
}

int count_newlines(const std::string& s, size_t from, size_t to) {
  return static_cast<int>(std::count(s.begin() + from, s.begin() + to, '\n'));
}

bool starts_with_at(const std::string& s, size_t i, const char* lit) {
  return s.compare(i, std::strlen(lit), lit) == 0;
}

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// jinja2 decodes string literals with Python's unicode-escape codec: the usual C escapes,
// \xhh, \uhhhh, \Uhhhhhhhh, octal, and an unknown escape kept as written.
std::string unescape(const std::string& body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 >= body.size()) {
      out += body[i];
      continue;
    }
    const char e = body[++i];
    switch (e) {
      case '\n': break;
      case '\\': out += '\\'; break;
      case '\'': out += '\''; break;
      case '"': out += '"'; break;
      case 'a': out += '\a'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'v': out += '\v'; break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        char32_t c = 0;
        for (size_t k = 0; k < digits; ++k) {
          const int h = i + 1 + k < body.size() ? hex_value(body[i + 1 + k]) : -1;
          if (h < 0) throw Error(line, std::string("truncated \\") + e + " escape in a string literal");
          c = c * 16 + static_cast<char32_t>(h);
        }
        if (c > 0x10ffff) throw Error(line, "illegal Unicode character in a string literal");
        i += digits;
        append_utf8(out, c);
        break;
      }
      case 'N': throw Error(line, "\\N{...} escapes in string literals are not supported");
      default:
        if (e >= '0' && e <= '7') {
          char32_t c = static_cast<char32_t>(e - '0');
          for (int k = 0; k < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++k)
            c = c * 8 + static_cast<char32_t>(body[++i] - '0');
          append_utf8(out, c);
        } else {
          out += '\\';
          out += e;
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(std::string src) : src_(std::move(src)) {}

  std::vector<Token> run() {
    size_t pos = 0;
    while (pos < src_.size()) {
      size_t tag = src_.find('{', pos);
      while (tag != std::string::npos && (tag + 1 >= src_.size() || std::strchr("{%#", src_[tag + 1]) == nullptr))
        tag = src_.find('{', tag + 1);
      if (tag == std::string::npos) {
        emit_text(src_.substr(pos));
        break;
      }
      const char kind = src_[tag + 1];
      size_t p = tag + 2;
      char mod = 0;
      if (p < src_.size() && (src_[p] == '-' || src_[p] == '+')) mod = src_[p++];
      std::string text = src_.substr(pos, tag - pos);
      apply_left_strip(text, mod, kind != '{');
      emit_text(text);
      line_ += count_newlines(src_, pos, tag);
      if (kind == '#') pos = comment(p);
      else if (kind == '%' && raw_block(p, pos)) continue;
      else pos = tag_body(p, kind == '%');
    }
    tokens_.push_back({Tok::Eof, "", line_});
    return std::move(tokens_);
  }

 private:
  void apply_left_strip(std::string& text, char mod, bool block_or_comment) {
    if (mod == '-') {
      text = rstrip_python(text);
    } else if (mod != '+' && block_or_comment) {
      const size_t nl = text.rfind('\n');
      const size_t line_start = nl == std::string::npos ? 0 : nl + 1;
      if ((line_start > 0 || line_starting_) &&
          text.find_first_not_of(" \t", line_start) == std::string::npos)
        text.resize(line_start);
    }
  }

  void emit_text(const std::string& text) {
    if (!text.empty()) tokens_.push_back({Tok::Text, text, line_});
  }

  // After a block or comment end: `-` eats all whitespace, `+` nothing, else one newline.
  size_t block_suffix(size_t end, char marker) {
    if (marker == '-') end = skip_python_space(src_, end);
    else if (marker != '+' && end < src_.size() && src_[end] == '\n') ++end;
    return end;
  }

  size_t comment(size_t p) {
    const size_t close = src_.find("#}", p);
    if (close == std::string::npos) throw Error(line_, "missing end of comment tag");
    const char marker = close > p ? src_[close - 1] : 0;
    const size_t end = block_suffix(close + 2, marker);
    finish(p, end);
    return end;
  }

  void finish(size_t from, size_t end) {
    line_ += count_newlines(src_, from, end);
    line_starting_ = end > 0 && src_[end - 1] == '\n';
  }

  // {% raw %}...{% endraw %}: the body is text, tags and all.
  bool raw_block(size_t p, size_t& pos) {
    size_t q = skip_python_space(src_, p);
    if (!starts_with_at(src_, q, "raw") || (q + 3 < src_.size() && is_name_char(src_[q + 3]))) return false;
    q = skip_python_space(src_, q + 3);
    size_t body;
    if (starts_with_at(src_, q, "-%}")) body = skip_python_space(src_, q + 3);
    else if (starts_with_at(src_, q, "%}")) body = q + 2;
    else return false;
    const int start_line = line_;
    for (size_t t = src_.find("{%", body); t != std::string::npos; t = src_.find("{%", t + 1)) {
      size_t r = t + 2;
      char mod = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) mod = src_[r++];
      r = skip_python_space(src_, r);
      if (!starts_with_at(src_, r, "endraw")) continue;
      r = skip_python_space(src_, r + 6);
      char marker = 0;
      if (r < src_.size() && (src_[r] == '-' || src_[r] == '+')) marker = src_[r++];
      if (!starts_with_at(src_, r, "%}")) continue;
      finish(p, body);
      std::string text = src_.substr(body, t - body);
      apply_left_strip(text, mod, true);
      emit_text(text);
      const size_t end = block_suffix(r + 2, marker);
      finish(body, end);
      pos = end;
      return true;
    }
    throw Error(start_line, "missing end of raw directive");
  }

  size_t tag_body(size_t p, bool block) {
    const int start_line = line_;
    tokens_.push_back({block ? Tok::BlockBegin : Tok::VarBegin, "", line_});
    std::string brackets;
    while (true) {
      if (p >= src_.size())
        throw Error(start_line, std::string("unexpected end of template, expected '") + (block ? "%}" : "}}") + "'");
      if (brackets.empty()) {
        const char* close = block ? "%}" : "}}";
        const bool minus = src_[p] == '-' && starts_with_at(src_, p + 1, close);
        const bool plus = block && src_[p] == '+' && starts_with_at(src_, p + 1, close);
        if (minus || plus || starts_with_at(src_, p, close)) {
          const size_t after = p + 2 + (minus || plus ? 1 : 0);
          const size_t end = block ? block_suffix(after, src_[p]) : minus ? skip_python_space(src_, after) : after;
          tokens_.push_back({block ? Tok::BlockEnd : Tok::VarEnd, "", line_});
          finish(p, end);
          return end;
        }
      }
      const char c = src_[p];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
        if (c == '\n') ++line_;
        ++p;
      } else if (is_digit(c)) {
        p = number(p);
      } else if (is_name_start(c)) {
        size_t e = p;
        while (e < src_.size() && is_name_char(src_[e])) ++e;
        tokens_.push_back({Tok::Name, src_.substr(p, e - p), line_});
        p = e;
      } else if (c == '\'' || c == '"') {
        p = string_literal(p);
      } else {
        p = op(p, brackets);
      }
    }
  }

  size_t digits(size_t p, std::string& out) {
    while (p < src_.size() && (is_digit(src_[p]) || (src_[p] == '_' && p + 1 < src_.size() && is_digit(src_[p + 1])))) {
      if (src_[p] != '_') out += src_[p];
      ++p;
    }
    return p;
  }

  size_t number(size_t p) {
    std::string text;
    p = digits(p, text);
    const bool after_dot = !tokens_.empty() && tokens_.back().kind == Tok::Op && tokens_.back().text == ".";
    bool is_float = false;
    if (!after_dot && p + 1 < src_.size() && src_[p] == '.' && is_digit(src_[p + 1])) {
      text += '.';
      p = digits(p + 1, text);
      is_float = true;
    }
    if (!after_dot && p < src_.size() && (src_[p] == 'e' || src_[p] == 'E')) {
      size_t q = p + 1;
      if (q < src_.size() && (src_[q] == '+' || src_[q] == '-')) ++q;
      if (q < src_.size() && is_digit(src_[q])) {
        text += 'e';
        text.append(src_, p + 1, q - p - 1);
        p = digits(q, text);
        is_float = true;
      }
    }
    tokens_.push_back({is_float ? Tok::Float : Tok::Int, text, line_});
    return p;
  }

  size_t string_literal(size_t p) {
    const char quote = src_[p];
    const int start_line = line_;
    size_t e = p + 1;
    while (e < src_.size() && src_[e] != quote) e += src_[e] == '\\' ? 2 : 1;
    if (e >= src_.size()) throw Error(start_line, "unterminated string literal");
    tokens_.push_back({Tok::String, unescape(src_.substr(p + 1, e - p - 1), start_line), start_line});
    line_ += count_newlines(src_, p, e);
    return e + 1;
  }

  size_t op(size_t p, std::string& brackets) {
    static const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
    for (const char* two : kTwo)
      if (starts_with_at(src_, p, two)) {
        tokens_.push_back({Tok::Op, two, line_});
        return p + 2;
      }
    const char c = src_[p];
    if (std::strchr("+-*/%~<>=.,:|()[]{};", c) == nullptr)
      throw Error(line_, std::string("unexpected character '") + c + "' in a tag");
    if (c == '(' || c == '[' || c == '{') {
      brackets += c == '(' ? ')' : c == '[' ? ']' : '}';
    } else if (c == ')' || c == ']' || c == '}') {
      if (brackets.empty() || brackets.back() != c)
        throw Error(line_, std::string("unexpected '") + c + "'");
      brackets.pop_back();
    }
    tokens_.push_back({Tok::Op, std::string(1, c), line_});
    return p + 1;
  }

  std::string src_;
  std::vector<Token> tokens_;
  int line_ = 1;
  bool line_starting_ = true;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source) {
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src)).run();
}

}  // namespace optiq::jinja
