#include "model/tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "model/unicode.h"
#include "util/error.h"

namespace optiq {
namespace {

constexpr const char* kSpace = "\xE2\x96\x81";  // ▁, SentencePiece's escaped space

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out += to;
  }
  if (pos == 0) return;
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

bool llama_isspace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

}  // namespace

void Tokenizer::finalize() {
  token_to_id.clear();
  token_to_id.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) token_to_id[tokens[i].text] = static_cast<int32_t>(i);

  merges_.clear();
  merges_.reserve(merge_list.size());
  for (size_t rank = 0; rank < merge_list.size(); ++rank) {
    const std::string& m = merge_list[rank];
    const size_t sp = m.find(' ', 1);
    if (sp == std::string::npos) continue;
    const int32_t l = find(std::string_view(m).substr(0, sp));
    const int32_t r = find(std::string_view(m).substr(sp + 1));
    if (l < 0 || r < 0) continue;
    const int32_t merged = find(m.substr(0, sp) + m.substr(sp + 1));
    merges_.emplace((static_cast<uint64_t>(l) << 32) | static_cast<uint32_t>(r),
                    std::make_pair(static_cast<int32_t>(rank), merged));
  }

  for (int b = 0; b < 256; ++b) {
    int32_t id = -1;
    if (byte_level) {
      id = find(unicode::byte_to_unicode()[b]);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "<0x%02X>", b);
      id = find(hex);
      if (id < 0 && flavor == TokenizerFlavor::LlamaCpp) id = find(std::string(1, static_cast<char>(b)));
    }
    byte_tokens_[b] = id;
  }

  special_order_.clear();
  for (size_t i = 0; i < tokens.size(); ++i) {
    const TokenType t = tokens[i].type;
    const bool candidate = flavor == TokenizerFlavor::HuggingFace
                               ? tokens[i].added
                               : t == TokenType::Control || t == TokenType::UserDefined || t == TokenType::Unknown;
    if (candidate) special_order_.push_back(static_cast<int32_t>(i));
  }
  std::stable_sort(special_order_.begin(), special_order_.end(), [&](int32_t a, int32_t b) {
    return tokens[a].text.size() > tokens[b].text.size();
  });
  cache_.clear();
}

// Splits text at special/added tokens. llama.cpp: each special token in turn (longest
// first) cuts every remaining text fragment at all its occurrences. Hugging Face: one
// left-to-right scan taking the longest added token that starts at each position.
std::vector<Tokenizer::Fragment> Tokenizer::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  auto eligible = [&](int32_t id) {
    if (parse_special) return true;
    const TokenType t = tokens[id].type;
    return flavor == TokenizerFlavor::LlamaCpp ? t == TokenType::UserDefined : !tokens[id].special;
  };
  if (flavor == TokenizerFlavor::LlamaCpp) {
    frags.push_back({0, text.size(), -1});
    for (int32_t id : special_order_) {
      if (!eligible(id)) continue;
      const std::string& tok = tokens[id].text;
      if (tok.empty()) continue;
      std::vector<Fragment> next;
      for (const Fragment& f : frags) {
        if (f.token >= 0) {
          next.push_back(f);
          continue;
        }
        size_t begin = f.begin;
        const std::string_view region = text.substr(0, f.end);
        while (true) {
          const size_t hit = region.find(tok, begin);
          if (hit == std::string_view::npos) {
            if (begin < f.end) next.push_back({begin, f.end, -1});
            break;
          }
          size_t left_end = hit;
          if (tokens[id].lstrip)
            while (left_end > begin && llama_isspace(text[left_end - 1])) --left_end;
          if (left_end > begin) next.push_back({begin, left_end, -1});
          next.push_back({hit, hit + tok.size(), id});
          begin = hit + tok.size();
          if (tokens[id].rstrip)
            while (begin < f.end && llama_isspace(text[begin])) ++begin;
          if (begin >= f.end) break;
        }
      }
      frags = std::move(next);
    }
    return frags;
  }

  // Hugging Face: bucket candidates by first byte.
  std::array<std::vector<int32_t>, 256> by_first;
  for (int32_t id : special_order_)
    if (eligible(id) && !tokens[id].text.empty())
      by_first[static_cast<unsigned char>(tokens[id].text[0])].push_back(id);
  size_t start = 0;  // start of the pending text fragment
  for (size_t i = 0; i < text.size();) {
    int32_t best = -1;
    for (int32_t id : by_first[static_cast<unsigned char>(text[i])]) {
      const std::string& tok = tokens[id].text;
      if (text.compare(i, tok.size(), tok) == 0) {
        best = id;  // longest first
        break;
      }
    }
    if (best < 0) {
      ++i;
      continue;
    }
    size_t left_end = i, right = i + tokens[best].text.size();
    auto prev_cp_start = [&](size_t p) {
      do --p;
      while (p > start && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80);
      return p;
    };
    if (tokens[best].lstrip)
      while (left_end > start) {
        size_t p = prev_cp_start(left_end), q = p;
        if (!unicode::is_whitespace(unicode::decode_utf8(text, q))) break;
        left_end = p;
      }
    if (tokens[best].rstrip)
      while (right < text.size()) {
        size_t q = right;
        if (!unicode::is_whitespace(unicode::decode_utf8(text, q))) break;
        right = q;
      }
    if (left_end > start) frags.push_back({start, left_end, -1});
    frags.push_back({left_end, right, best});
    start = i = right;
  }
  if (start < text.size()) frags.push_back({start, text.size(), -1});
  return frags;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  std::vector<int32_t> out;
  const auto frags = partition(text, parse_special);
  if (add_special && add_bos && bos >= 0) out.push_back(bos);
  bool prev_special = true;
  for (const Fragment& f : frags) {
    if (f.token >= 0) {
      out.push_back(f.token);
      prev_special = true;
      continue;
    }
    const std::string_view piece = text.substr(f.begin, f.end - f.begin);
    if (flavor == TokenizerFlavor::HuggingFace) {
      encode_hf(piece, f.begin == 0, out);
    } else if (model == TokenizerModel::Spm) {
      std::string s = add_space_prefix && prev_special ? " " : "";
      s += piece;
      replace_all(s, " ", kSpace);
      encode_spm_llama(s, out);
    } else {
      encode_bpe_llama(piece, out);
    }
    prev_special = false;
  }
  if (add_special && add_eos && eos >= 0) out.push_back(eos);
  return out;
}

// Byte-pair merging of one word: symbols start as its UTF-8 characters; the adjacent pair
// with the lowest merge rank (leftmost on ties) is merged until none is left. llama.cpp's and
// Hugging Face's BPE agree on this order; they differ in what happens to characters that
// are not tokens (llama.cpp: bytes at the end; HF: byte_fallback or unk up front).
void Tokenizer::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges) {
    if (int32_t id = find(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (auto it = cache_.find(word); it != cache_.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  struct Sym {
    int32_t id;
    int prev, next;
    uint32_t begin, len;
  };
  std::vector<Sym> syms;
  syms.reserve(word.size());
  const bool hf = flavor == TokenizerFlavor::HuggingFace;
  int unk_sym = -1;  // HF fuse_unk: the open unk symbol
  for (size_t pos = 0; pos < word.size();) {
    const size_t n = std::min(unicode::utf8_len(static_cast<unsigned char>(word[pos])), word.size() - pos);
    const int32_t id = find(word.substr(pos, n));
    auto add = [&](int32_t tid, size_t b, size_t len) {
      syms.push_back({tid, static_cast<int>(syms.size()) - 1, static_cast<int>(syms.size()) + 1,
                      static_cast<uint32_t>(b), static_cast<uint32_t>(len)});
    };
    if (id >= 0 || !hf) {
      add(id, pos, n);
      unk_sym = -1;
    } else {
      bool done = false;
      if (byte_fallback) {
        bool all = true;
        for (size_t k = 0; k < n; ++k) all = all && byte_tokens_[static_cast<unsigned char>(word[pos + k])] >= 0;
        if (all) {
          for (size_t k = 0; k < n; ++k) add(byte_tokens_[static_cast<unsigned char>(word[pos + k])], pos + k, 1);
          done = true;
          unk_sym = -1;
        }
      }
      if (!done && unk >= 0) {
        if (fuse_unk && unk_sym >= 0) {
          syms[unk_sym].len += static_cast<uint32_t>(n);
        } else {
          add(unk, pos, n);
          unk_sym = static_cast<int>(syms.size()) - 1;
        }
      }
    }
    pos += n;
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Cand {
    int32_t rank;
    int left, right;
    int32_t merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
  auto consider = [&](int l, int r) {
    if (l < 0 || r < 0 || syms[l].id < 0 || syms[r].id < 0) return;
    auto it = merges_.find((static_cast<uint64_t>(syms[l].id) << 32) | static_cast<uint32_t>(syms[r].id));
    if (it != merges_.end()) queue.push({it->second.first, l, r, it->second.second});
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) consider(static_cast<int>(i), static_cast<int>(i) + 1);
  while (!queue.empty()) {
    const Cand c = queue.top();
    queue.pop();
    Sym& l = syms[c.left];
    if (l.len == 0 || l.next != c.right || syms[c.right].len == 0) continue;
    Sym& r = syms[c.right];
    auto it = merges_.find((static_cast<uint64_t>(l.id) << 32) | static_cast<uint32_t>(r.id));
    if (it == merges_.end() || it->second.first != c.rank) continue;
    l.len += r.len;
    l.id = c.merged;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    consider(l.prev, c.left);
    consider(c.left, l.next);
  }
  std::vector<int32_t> result;
  for (int i = 0; i >= 0; i = syms[i].next) {
    const Sym& s = syms[i];
    if (s.id >= 0) {
      result.push_back(s.id);
    } else {  // llama.cpp: a symbol that is no token is written as its bytes' tokens
      for (uint32_t k = 0; k < s.len; ++k) {
        int32_t b = -1;
        if (byte_level) b = find(word.substr(s.begin + k, 1));
        else b = byte_tokens_[static_cast<unsigned char>(word[s.begin + k])];
        if (b >= 0) result.push_back(b);
      }
    }
  }
  if (cache_.size() < 200000) cache_.emplace(std::string(word), result);
  out.insert(out.end(), result.begin(), result.end());
}

void Tokenizer::encode_bpe_llama(std::string_view text, std::vector<int32_t>& out) const {
  std::vector<std::string> words{std::string(text)};
  for (const auto& re : llama_regexes) split_pieces(*re, SplitBehavior::Isolated, false, words);
  for (const std::string& w : words) {
    if (byte_level) bpe_word(unicode::bytes_to_byte_level(w), out);
    else bpe_word(w, out);
  }
}

void Tokenizer::encode_hf(std::string_view piece, bool first_fragment, std::vector<int32_t>& out) const {
  std::string s(piece);
  for (const NormalizerStep& n : normalizers) {
    switch (n.kind) {
      case NormalizerStep::Nfc: s = unicode::nfc(s); break;
      case NormalizerStep::Prepend:
        if (!s.empty()) s = n.content + s;
        break;
      case NormalizerStep::Replace: replace_all(s, n.pattern, n.content); break;
    }
  }
  if (s.empty()) return;
  std::vector<std::string> words{std::move(s)};
  bool at_start = first_fragment;
  static const Regex byte_level_re(pre_regex::kByteLevel);
  static const Regex digits_re("\\p{N}");
  static const Regex digit_runs_re("\\p{N}+");
  for (const PreTokenizerStep& p : pre_steps) {
    switch (p.kind) {
      case PreTokenizerStep::Split: split_pieces(*p.regex, p.behavior, p.invert, words); break;
      case PreTokenizerStep::Digits:
        split_pieces(p.individual_digits ? digits_re : digit_runs_re, SplitBehavior::Isolated, false, words);
        break;
      case PreTokenizerStep::ByteLevel:
        if (p.add_prefix_space)
          for (auto& w : words)
            if (w.empty() || w[0] != ' ') w.insert(0, " ");
        if (p.use_regex) split_pieces(byte_level_re, SplitBehavior::Isolated, false, words);
        for (auto& w : words) w = unicode::bytes_to_byte_level(w);
        break;
      case PreTokenizerStep::Metaspace: {
        for (size_t i = 0; i < words.size(); ++i) {
          std::string& w = words[i];
          replace_all(w, " ", p.replacement);
          const bool starts = w.compare(0, p.replacement.size(), p.replacement) == 0;
          if (!starts && (p.prepend == PreTokenizerStep::Always ||
                          (p.prepend == PreTokenizerStep::First && at_start && i == 0)))
            w.insert(0, p.replacement);
        }
        if (p.split && p.regex) split_pieces(*p.regex, SplitBehavior::MergedWithNext, false, words);
        break;
      }
    }
    at_start = at_start && !words.empty();
  }
  for (const std::string& w : words) bpe_word(w, out);
}

}  // namespace optiq
