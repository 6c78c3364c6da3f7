// The file of reference log-probabilities that llama.cpp's llama-perplexity writes with
// --kl-divergence-base and reads back with --kl-divergence, in its exact layout, so that a
// base written by either tool can be read by the other:
//   char[8]  "_logits_"
//   int32    n_ctx                tokens per chunk
//   int32    n_vocab
//   int32    n_chunk
//   int32    tokens[n_chunk * n_ctx]      the evaluated text (original tokens, no BOS swap)
//   then per chunk, per scored position (n_ctx - 1 - n_ctx / 2 of them, in order), one row of
//   row_words(n_vocab) uint16 words:
//     float  scale                (words 0-1) step between quantized log-probabilities
//     float  min_log_prob         (words 2-3) the log-probability that code 0 stands for
//     uint16 code[n_vocab]        log p(i) ~= scale * code[i] + min_log_prob
//     (one padding word when n_vocab is odd)
// Log-probabilities more than 16 below the top one are clamped to code 0. All little-endian.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "util/atomic_file.h"
#include "util/mapped_file.h"

namespace optiq::eval {

inline constexpr char kLogitsMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};
inline constexpr uint64_t kLogitsHeaderBytes = 8 + 3 * 4;

// uint16 words of one row: the two floats plus the codes, padded to an even count.
inline int64_t row_words(int64_t n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }

// Scored positions of a chunk: the second half of it, except the last token (it has no next).
inline int64_t scored_per_chunk(int64_t n_ctx) { return n_ctx - 1 - n_ctx / 2; }

// Encodes the log-softmax of `logits` [n_vocab] into `row` [row_words(n_vocab)] and returns
// the negative log-likelihood of `next_token`, both computed in llama.cpp's precision (float
// log-sum-exp over a double sum) so that the numbers match its output.
double encode_log_probs(const float* logits, int64_t n_vocab, int32_t next_token, uint16_t* row);

// The log-probability a row's code stands for.
inline float decode_log_prob(const uint16_t* row, int64_t i, float scale, float min_log_prob) {
  return scale * row[4 + i] + min_log_prob;
}

// Writes a base file: the header and tokens first, then rows as chunks are evaluated; the file
// appears (atomically) at commit().
class LogitsFileWriter {
 public:
  LogitsFileWriter(const std::string& path, int32_t n_ctx, int32_t n_vocab,
                   std::span<const int32_t> tokens /* [n_chunk * n_ctx] */);
  void write_rows(const uint16_t* rows, int64_t n_rows);  // rows: [n_rows, row_words(n_vocab)]
  void commit();

 private:
  AtomicFile file_;
  int64_t row_words_;  // uint16 words per row
};

// A base file, memory-mapped and checked: the header's counts are positive, the file holds
// exactly the header, tokens and rows they announce (a truncated file is reported with the
// offset where it ends and the size expected), and every token is inside the vocabulary.
class LogitsFile {
 public:
  explicit LogitsFile(const std::string& path);

  int32_t n_ctx() const { return n_ctx_; }
  int32_t n_vocab() const { return n_vocab_; }
  int32_t n_chunk() const { return n_chunk_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }  // [n_chunk * n_ctx]
  // The rows of chunk c: [scored_per_chunk(n_ctx), row_words(n_vocab)] uint16 words.
  const uint16_t* chunk_rows(int64_t c) const;
  const std::string& path() const { return map_.path(); }

  // The file offset of token i, for error messages.
  static uint64_t token_offset(int64_t i) { return kLogitsHeaderBytes + 4 * static_cast<uint64_t>(i); }

 private:
  MappedFile map_;
  int32_t n_ctx_ = 0, n_vocab_ = 0, n_chunk_ = 0;
  std::vector<int32_t> tokens_;  // [n_chunk * n_ctx]
  const uint16_t* rows_ = nullptr;  // in the mapping: [n_chunk, scored_per_chunk(n_ctx), row_words(n_vocab)]
};

}  // namespace optiq::eval
