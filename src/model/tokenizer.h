// A tokenizer: the token table with its special ids and flags (the "vocab"), plus the pipeline
// that turns text into ids and back. Two families of behaviour are reproduced exactly:
//  - llama.cpp's (Flavor::LlamaCpp), for vocabularies loaded from GGUF metadata: SentencePiece
//    score-ordered bigram merging with byte fallback ("llama"), and byte-level BPE with the
//    pre-tokenizer regexes chosen by tokenizer.ggml.pre ("gpt2");
//  - Hugging Face tokenizers' (Flavor::HuggingFace), for tokenizer.json and vocab.json +
//    merges.txt: normalizers, pre-tokenizers, the BPE model (ranked merges, byte_fallback,
//    ignore_merges), decoders and added tokens.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "io/gguf.h"
#include "model/pretokenize.h"

namespace optiq {

// GGUF token types (tokenizer.ggml.token_type), as llama.cpp and gguf-py number them.
enum class TokenType : int32_t {
  Undefined = 0, Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6,
};

struct TokenInfo {
  std::string text;
  float score = 0.0f;
  TokenType type = TokenType::Normal;
  // Added-token flags (Hugging Face) or llama.cpp's per-token attributes.
  bool lstrip = false, rstrip = false;
  bool special = false;  // HF: skipped by decode(skip_special); llama.cpp: control or unknown
  bool added = false;    // HF: an added token (matched in the text before the model runs)
};

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

enum class TokenizerModel { Spm, Bpe };
enum class TokenizerFlavor { LlamaCpp, HuggingFace };

struct NormalizerStep {
  enum Kind { Nfc, Prepend, Replace } kind = Nfc;
  std::string pattern, content;  // Replace: pattern -> content; Prepend: content
};

struct PreTokenizerStep {
  enum Kind { Split, ByteLevel, Digits, Metaspace } kind = Split;
  std::shared_ptr<Regex> regex;  // Split
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
  bool use_regex = true;          // ByteLevel
  bool individual_digits = false; // Digits
  std::string replacement = "\xE2\x96\x81";  // Metaspace
  enum Prepend { Always, First, Never } prepend = Always;
  bool split = true;  // Metaspace
};

struct DecoderStep {
  enum Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace } kind = ByteLevel;
  std::string pattern, content;  // Replace; Strip: content is the character
  size_t start = 0, stop = 0;    // Strip
  bool prepend_first = true;     // Metaspace: strip the replacement from the first token
};

class Tokenizer {
 public:
  TokenizerModel model = TokenizerModel::Bpe;
  TokenizerFlavor flavor = TokenizerFlavor::LlamaCpp;
  std::vector<TokenInfo> tokens;
  TokenMap token_to_id;
  // BPE merges in rank order, as GGUF stores them ("left right").
  std::vector<std::string> merge_list;

  int32_t bos = -1, eos = -1, unk = -1, pad = -1, eot = -1;
  bool add_bos = false, add_eos = false;
  bool add_space_prefix = false;  // llama.cpp SPM: prefix raw text with a space
  bool ignore_merges = false;     // BPE: a word that is a token is taken whole
  bool clean_spaces = false;      // llama.cpp detokenize clean-up
  bool byte_fallback = false;     // HF BPE: unknown characters become <0xNN> tokens
  bool fuse_unk = false;
  bool byte_level = false;        // words are byte-level encoded before BPE (GPT-2 alphabet)
  std::string pre_name;           // tokenizer.ggml.pre
  std::vector<std::shared_ptr<Regex>> llama_regexes;  // llama.cpp's pre-tokenizer
  std::vector<NormalizerStep> normalizers;            // HF
  std::vector<PreTokenizerStep> pre_steps;            // HF
  std::vector<DecoderStep> decoders;                  // HF
  std::string chat_template;

  // Must be called after the fields above are filled: builds lookup tables.
  void finalize();

  int32_t n_tokens() const { return static_cast<int32_t>(tokens.size()); }
  int32_t find(std::string_view text) const {
    auto it = token_to_id.find(text);
    return it == token_to_id.end() ? -1 : it->second;
  }

  // add_special: BOS/EOS as the vocabulary says; parse_special: special tokens written in
  // the text become their ids (otherwise they are tokenized as plain text).
  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;
  // The text of ids; special tokens are dropped when skip_special, written out otherwise.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;
  // One token's text as it appears in output (llama.cpp's token_to_piece with special=true).
  std::string token_to_piece(int32_t id) const;

 private:
  struct Fragment {
    size_t begin = 0, end = 0;
    int32_t token = -1;  // >= 0: an added/special token
  };
  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;
  void encode_spm_llama(std::string_view text, std::vector<int32_t>& out) const;
  void encode_bpe_llama(std::string_view text, std::vector<int32_t>& out) const;
  void encode_hf(std::string_view text, bool first_fragment, std::vector<int32_t>& out) const;
  void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
  std::string decode_hf(const std::vector<int32_t>& ids, bool skip_special) const;
  std::string decode_llama(const std::vector<int32_t>& ids, bool skip_special) const;

  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  std::vector<int32_t> special_order_;  // partition candidates, longest first
  std::array<int32_t, 256> byte_tokens_{};  // byte -> token (<0xNN> or byte-level char), -1 if none
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

// Loads the tokenizer a GGUF's metadata describes (tokenizer.ggml.*), with llama.cpp's
// defaults and rules. Throws InputError naming `label` and the key at fault.
Tokenizer load_gguf_tokenizer(const GgufMetadata& metadata, const std::string& label);

// Loads a Hugging Face tokenizer from a folder: tokenizer.json, or vocab.json + merges.txt
// (+ added_tokens.json), with tokenizer_config.json for BOS/EOS and flags.
Tokenizer load_hf_tokenizer(const std::filesystem::path& dir);

// A .gguf file (its metadata) or a Hugging Face folder.
Tokenizer load_tokenizer(const std::filesystem::path& path);

}  // namespace optiq

namespace optiq {

// The tokenizer.* GGUF metadata llama.cpp's converter (convert_hf_to_gguf.py) writes for a
// Hugging Face folder, so that llama.cpp tokenizes the converted model as Hugging Face does:
// byte-level BPE folders become tokenizer.ggml.model "gpt2" with a pre-tokenizer name (see
// hf_pre_tokenizer_name), SentencePiece-style BPE tokenizer.json (byte_fallback) becomes
// "llama" with scores from the merge ranks. `vocab_size` is config.json's (the embedding
// rows); ids without a token are written as "[PAD<i>]", unused. Returns false (writing
// nothing) when the folder has no tokenizer files.
bool hf_tokenizer_to_gguf(const std::filesystem::path& dir, int64_t vocab_size, GgufMetadata& out);

}  // namespace optiq
