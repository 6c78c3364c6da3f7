#include "eval/logits_file.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/error.h"

namespace optiq::eval {
namespace {

// Round half to even, as llama.cpp's code quantizer does (its magic-number trick).
uint16_t round_code(float x) { return static_cast<uint16_t>(std::nearbyint(x)); }

int32_t read_i32(const std::byte* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

double encode_log_probs(const float* logits, int64_t n_vocab, int32_t next_token, uint16_t* row) {
  float max = logits[0], min = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) {
    max = std::max(max, logits[i]);
    min = std::min(min, logits[i]);
  }
  // Codes cover the top 16 nats; anything below is clamped to code 0.
  min = std::max(min, max - 16);
  double sum = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - max);
  const float log_sum = static_cast<float>(std::log(sum));
  const float min_log_prob = min - max - log_sum;
  const float scale = (max - min) / 65535.f;
  std::memcpy(row, &scale, 4);
  std::memcpy(row + 2, &min_log_prob, 4);
  uint16_t* codes = row + 4;
  std::fill(codes, row + row_words(n_vocab), uint16_t{0});
  if (scale != 0.0f) {
    const float inv_scale = 1 / scale;
    for (int64_t i = 0; i < n_vocab; ++i)
      if (logits[i] > min) codes[i] = round_code(inv_scale * (logits[i] - min));
  }
  const float nll = max + log_sum - logits[next_token];
  return nll;
}

LogitsFileWriter::LogitsFileWriter(const std::string& path, int32_t n_ctx, int32_t n_vocab,
                                   std::span<const int32_t> tokens)
    : file_(path), row_words_(row_words(n_vocab)) {
  const auto n_chunk = static_cast<int32_t>(tokens.size() / static_cast<size_t>(n_ctx));
  file_.write(kLogitsMagic, sizeof kLogitsMagic);
  file_.write(&n_ctx, 4);
  file_.write(&n_vocab, 4);
  file_.write(&n_chunk, 4);
  file_.write(tokens.data(), tokens.size_bytes());
}

void LogitsFileWriter::write_rows(const uint16_t* rows, int64_t n_rows) {
  file_.write(rows, static_cast<size_t>(n_rows * row_words_) * sizeof(uint16_t));
}

void LogitsFileWriter::commit() { file_.commit(); }

LogitsFile::LogitsFile(const std::string& path) : map_(path) {
  const std::byte* p = map_.bytes().data();
  const uint64_t size = map_.size();
  if (size < kLogitsHeaderBytes)
    throw InputError(path, size, "the file ends inside the header (" + std::to_string(kLogitsHeaderBytes) +
                                     " bytes: \"_logits_\", n_ctx, n_vocab, n_chunk)");
  if (std::memcmp(p, kLogitsMagic, sizeof kLogitsMagic) != 0)
    throw InputError(path, 0, "not a log-probability file of llama-perplexity --kl-divergence-base (no \"_logits_\" magic)");
  n_ctx_ = read_i32(p + 8);
  n_vocab_ = read_i32(p + 12);
  n_chunk_ = read_i32(p + 16);
  if (n_ctx_ < 3) throw InputError(path, 8, "n_ctx is " + std::to_string(n_ctx_) + ", expected at least 3");
  if (n_vocab_ < 1) throw InputError(path, 12, "n_vocab is " + std::to_string(n_vocab_) + ", expected at least 1");
  if (n_chunk_ < 1) throw InputError(path, 16, "n_chunk is " + std::to_string(n_chunk_) + ", expected at least 1");

  // 128-bit so that no header can overflow the size computation.
  const auto n_tokens = static_cast<unsigned __int128>(n_chunk_) * static_cast<uint64_t>(n_ctx_);
  const unsigned __int128 expected = kLogitsHeaderBytes + 4 * n_tokens +
                                     2 * static_cast<unsigned __int128>(n_chunk_) *
                                         static_cast<uint64_t>(scored_per_chunk(n_ctx_)) *
                                         static_cast<uint64_t>(row_words(n_vocab_));
  const std::string shape = std::to_string(n_chunk_) + " chunks of " + std::to_string(n_ctx_) +
                            " tokens over a vocabulary of " + std::to_string(n_vocab_);
  if (size < expected)
    throw InputError(path, size, "the file ends here, but " + shape + " need " +
                                     std::to_string(static_cast<uint64_t>(expected)) + " bytes (truncated?)");
  if (size > expected)
    throw InputError(path, static_cast<uint64_t>(expected),
                     std::to_string(size - static_cast<uint64_t>(expected)) +
                         " bytes follow the log-probabilities of " + shape);

  tokens_.resize(static_cast<size_t>(n_tokens));
  std::memcpy(tokens_.data(), p + kLogitsHeaderBytes, tokens_.size() * 4);
  for (size_t i = 0; i < tokens_.size(); ++i)
    if (tokens_[i] < 0 || tokens_[i] >= n_vocab_)
      throw InputError(path, token_offset(static_cast<int64_t>(i)),
                       "token " + std::to_string(i) + " is " + std::to_string(tokens_[i]) +
                           ", outside the file's vocabulary of " + std::to_string(n_vocab_));
  // The rows start at a multiple of 4 bytes of a page-aligned mapping: aligned for uint16.
  rows_ = reinterpret_cast<const uint16_t*>(p + kLogitsHeaderBytes + tokens_.size() * 4);
}

const uint16_t* LogitsFile::chunk_rows(int64_t c) const {
  return rows_ + c * scored_per_chunk(n_ctx_) * row_words(n_vocab_);
}

}  // namespace optiq::eval
