// llama.cpp's SentencePiece-style ("llama") tokenization of one text fragment: the text (spaces
// already escaped to ▁) starts as one symbol per UTF-8 character; the adjacent pair whose
// concatenation is a token with the highest score (leftmost on ties) is merged until no pair
// forms a token. Each final symbol is then "resegmented": emitted as its token if it is one,
// else split back into the two symbols it was merged from, recursively, and a character that
// is no token becomes its bytes' <0xNN> tokens.
#include <queue>
#include <unordered_map>

#include "model/tokenizer.h"
#include "model/unicode.h"

namespace optiq {

void Tokenizer::encode_spm_llama(std::string_view text, std::vector<int32_t>& out) const {
  struct Sym {
    int prev, next;
    size_t begin, len;
  };
  std::vector<Sym> syms;
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = std::min(unicode::utf8_len(static_cast<unsigned char>(text[pos])), text.size() - pos);
    syms.push_back({static_cast<int>(syms.size()) - 1, static_cast<int>(syms.size()) + 1, pos, n});
    pos += n;
  }
  if (syms.empty()) return;
  syms.back().next = -1;

  struct Bigram {
    float score;
    int left, right;
    size_t size;
  };
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  std::unordered_map<std::string_view, std::pair<int, int>> rev_merge;

  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const std::string_view s = text.substr(syms[l].begin, syms[l].len + syms[r].len);
    const int32_t id = find(s);
    if (id < 0) return;
    queue.push({tokens[id].score, l, r, s.size()});
    rev_merge[s] = {l, r};
  };
  for (size_t i = 1; i < syms.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Sym& l = syms[b.left];
    Sym& r = syms[b.right];
    if (l.len == 0 || r.len == 0 || l.len + r.len != b.size) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }

  auto resegment = [&](auto& self, const Sym& s) -> void {
    const std::string_view piece = text.substr(s.begin, s.len);
    if (const int32_t id = find(piece); id >= 0) {
      out.push_back(id);
      return;
    }
    auto it = rev_merge.find(piece);
    if (it == rev_merge.end()) {
      for (unsigned char c : piece)
        if (byte_tokens_[c] >= 0) out.push_back(byte_tokens_[c]);
      return;
    }
    self(self, syms[it->second.first]);
    self(self, syms[it->second.second]);
  };
  for (int i = 0; i >= 0; i = syms[i].next) resegment(resegment, syms[i]);
}

}  // namespace optiq
