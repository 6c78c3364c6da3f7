// Pre-tokenization: splitting text into words before BPE, with the Unicode-aware regexes
// (\p{L}, \p{N}, lookahead) tokenizers are defined by. PCRE2 runs them, JIT-compiled, with
// Unicode properties; std::regex cannot.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace optiq {

class Regex {
 public:
  // Throws std::invalid_argument naming the pattern and PCRE2's message.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping matches [begin, end) in text, left to right; empty matches are skipped.
  // Invalid UTF-8 never matches (PCRE2_MATCH_INVALID_UTF) and so lands in the gaps.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;
  const std::string& pattern() const { return pattern_; }

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// How the matches of a split pattern become pieces (Hugging Face's SplitDelimiterBehavior).
enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

// Splits every piece at the pattern's matches (or, inverted, at its non-matches).
void split_pieces(const Regex& re, SplitBehavior behavior, bool invert,
                  std::vector<std::string>& pieces);

// The regexes llama.cpp applies, one after another, for a `tokenizer.ggml.pre` name; false if
// the name is unknown. `ignore_merges` and `clean_spaces` get llama.cpp's per-name settings.
struct LlamaPreTokenizer {
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  bool clean_spaces = true;
  bool add_bos = false;  // llama.cpp's default before tokenizer.ggml.add_bos_token
};
bool llama_pre_tokenizer(const std::string& name, LlamaPreTokenizer& out);
// The names llama_pre_tokenizer knows, for messages.
std::string llama_pre_tokenizer_names();

// The regexes themselves, shared with the Hugging Face loader.
namespace pre_regex {
inline constexpr const char* kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
// Hugging Face's ByteLevel pre-tokenizer: GPT-2's plus a final \s+.
inline constexpr const char* kByteLevel =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
inline constexpr const char* kLlama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
inline constexpr const char* kQwen2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
}  // namespace pre_regex

}  // namespace optiq
