#define PCRE2_CODE_UNIT_WIDTH 8
#include "model/pretokenize.h"

#include <pcre2.h>

#include <stdexcept>

namespace optiq {

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE err_off = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off,
                                   nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    throw std::invalid_argument("regex '" + pattern + "' at offset " + std::to_string(err_off) +
                                ": " + reinterpret_cast<const char*>(msg));
  }
  jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  auto* code = static_cast<pcre2_code*>(code_);
  // One match-data block per thread, reused: allocation would dominate short words.
  thread_local pcre2_match_data* md = pcre2_match_data_create(4, nullptr);
  const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t pos = 0;
  while (pos < text.size()) {
    const int rc = jit_ ? pcre2_jit_match(code, subject, text.size(), pos, 0, md, nullptr)
                        : pcre2_match(code, subject, text.size(), pos, 0, md, nullptr);
    if (rc < 0) break;  // no match (or a matching error: treat the rest as a gap)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      pos = e;
    } else {
      // Empty match: step over one character (a UTF-8 sequence, or one invalid byte).
      pos = b + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xC0) == 0x80) ++pos;
    }
  }
}

void split_pieces(const Regex& re, SplitBehavior behavior, bool invert,
                  std::vector<std::string>& pieces) {
  std::vector<std::string> result;
  result.reserve(pieces.size() * 2);
  std::vector<std::pair<size_t, size_t>> matches;
  for (const std::string& piece : pieces) {
    matches.clear();
    re.find_all(piece, matches);
    // Spans in order, each flagged as delimiter (a match, or a non-match when inverted).
    std::vector<std::pair<std::pair<size_t, size_t>, bool>> spans;
    size_t last = 0;
    for (auto [b, e] : matches) {
      if (b > last) spans.push_back({{last, b}, invert});
      spans.push_back({{b, e}, !invert});
      last = e;
    }
    if (last < piece.size()) spans.push_back({{last, piece.size()}, invert});

    std::string pending;  // MergedWithNext: delimiters waiting for the next piece
    bool have_pending = false;
    for (size_t i = 0; i < spans.size(); ++i) {
      const auto [range, delim] = spans[i];
      std::string s = piece.substr(range.first, range.second - range.first);
      switch (behavior) {
        case SplitBehavior::Isolated: result.push_back(std::move(s)); break;
        case SplitBehavior::Removed:
          if (!delim) result.push_back(std::move(s));
          break;
        case SplitBehavior::MergedWithPrevious:
          if (delim && !result.empty() && i > 0 && !spans[i - 1].second) result.back() += s;
          else result.push_back(std::move(s));
          break;
        case SplitBehavior::MergedWithNext:
          if (delim) {
            pending += s;
            have_pending = true;
          } else {
            result.push_back(pending + s);
            pending.clear();
            have_pending = false;
          }
          break;
        case SplitBehavior::Contiguous:
          if (delim && i > 0 && spans[i - 1].second && !result.empty()) result.back() += s;
          else result.push_back(std::move(s));
          break;
      }
    }
    if (have_pending) result.push_back(std::move(pending));
  }
  pieces = std::move(result);
}

namespace {

struct PreEntry {
  std::vector<const char*> names;
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  bool clean_spaces = true;
  bool add_bos = false;
};

const std::vector<PreEntry>& pre_table() {
  using namespace pre_regex;
  static const std::string kPoro = " ?[^(\\s|.,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c)]+";
  static const std::vector<PreEntry> table = {
      {{"default"},
       {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"},
       {kLlama3}, true, true, true},
      {{"dbrx", "smaug-bpe"}, {kLlama3}},
      {{"chatglm-bpe", "glm4"}, {kLlama3}},
      {{"qwen2", "deepseek-r1-qwen", "kormo"}, {kQwen2}, false, false},
      {{"stablelm2"}, {kQwen2}},
      {{"qwen35"},
       {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       false, false},
      {{"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
        "mellum", "modern-bert", "mpt", "olmo", "jais", "trillion", "granite-docling"},
       {kGpt2}},
      {{"smollm", "command-r"}, {"\\p{N}", kGpt2}, false, false},
      {{"starcoder", "refact", "codeshell", "exaone"}, {"\\p{N}", kGpt2}},
      {{"falcon"},
       {"[\\p{P}\\$\\+<=>\\^~\\|`]+", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
        "[0-9][0-9][0-9]"}},
      {{"deepseek-coder"},
       {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\u4e00-\u9fa5\u0800-\u4e00\uac00-\ud7ff]+", "\\p{N}"},
       false, false},
      {{"tekken"},
       {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
       true, false, true},
      {{"poro-chat"}, {kPoro}, false, false},
      {{"bloom", "gpt3-finnish"}, {kPoro}},
  };
  return table;
}

}  // namespace

bool llama_pre_tokenizer(const std::string& name, LlamaPreTokenizer& out) {
  for (const auto& e : pre_table())
    for (const char* n : e.names)
      if (name == n) {
        out.regexes = e.regexes;
        out.ignore_merges = e.ignore_merges;
        out.clean_spaces = e.clean_spaces;
        out.add_bos = e.add_bos;
        return true;
      }
  return false;
}

std::string llama_pre_tokenizer_names() {
  std::string s;
  for (const auto& e : pre_table())
    for (const char* n : e.names) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

}  // namespace optiq
