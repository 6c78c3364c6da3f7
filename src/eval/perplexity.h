// Perplexity over a text, computed the way llama.cpp's llama-perplexity does
// (tools/perplexity/perplexity.cpp), so the numbers can be compared with its output:
//  - the text is tokenized with BOS (when the vocabulary adds one) and cut into consecutive
//    chunks of n_ctx tokens; a tail shorter than n_ctx is dropped;
//  - each chunk is evaluated from an empty KV cache, its first token replaced by BOS when the
//    vocabulary adds one (every chunk starts like a document);
//  - only the second half is scored: the logits at positions n_ctx/2 .. n_ctx-2 predict the
//    tokens after them (n_ctx - 1 - n_ctx/2 tokens per chunk), so every scored token has at
//    least n_ctx/2 tokens of context;
//  - PPL = exp(mean negative log-likelihood), printed after every chunk as "[k]ppl," (the
//    running value over chunks 1..k), and the final estimate with the standard error
//    PPL * sqrt(var(nll) / (count - 1)).
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

#include "engine/model.h"
#include "eval/logits_file.h"

namespace optiq::eval {

struct ChunkSetup {
  int64_t n_ctx = 512;    // tokens per chunk (llama-perplexity's -c)
  int64_t n_batch = 2048; // most tokens per forward call (-b); the chunk is split when smaller
  int32_t bos = -1;       // BOS id put at each chunk's start, or -1 when the vocabulary adds none
  engine::KVCacheConfig kv;  // how the KV cache is stored (default: F32)
};

// The text as llama-perplexity reads -f: the whole file, one trailing newline removed. Throws
// InputError when it cannot be opened.
std::string read_perplexity_text(const std::string& path);

// The tokens of chunk c of `tokens` as the model sees them: tokens[c*n_ctx, (c+1)*n_ctx), the
// first replaced by BOS when setup.bos >= 0.
std::vector<int32_t> chunk_input(std::span<const int32_t> tokens, int64_t c, const ChunkSetup& setup);

// Evaluates one chunk (from chunk_input) from an empty cache, in forward calls of at most
// n_batch tokens, and leaves in `out` the logits of positions n_ctx/2 .. n_ctx-1:
// [n_ctx - n_ctx/2, n_vocab]. `cache` must hold n_ctx positions; it is cleared first.
void chunk_logits(const engine::Model& model, engine::KVCache& cache, std::span<const int32_t> chunk,
                  const ChunkSetup& setup, std::vector<float>& out);

// -log p(token) from one row of logits [n_vocab], in llama-perplexity's precision (logit
// minus max in float, sum of exponentials and its log in double).
double token_nll(const float* logits, int64_t n_vocab, int32_t token);

struct PerplexityEstimate {
  double ppl = 0;    // exp(mean nll)
  double error = 0;  // its standard error; 0 when the variance came out <= 0
  bool has_error = false;
};

// From the sums of nll and nll^2 over `count` scored tokens.
PerplexityEstimate estimate_perplexity(double nll_sum, double nll2_sum, int64_t count);

struct PerplexityResult {
  PerplexityEstimate final;        // over all scored tokens
  std::vector<double> running_ppl; // [n_chunk] the running value printed after each chunk
};

// Scores chunks 0 .. n_chunk-1 of `tokens` (n_chunk * n_ctx of them must be there), printing
// "[k]ppl," to `out` after each chunk and, when `base` is given, writing every scored row of
// log-probabilities to it (the base file's token nll's are then the ones summed, as in
// llama-perplexity). Prints the seconds per chunk to `log` after the first.
PerplexityResult compute_perplexity(const engine::Model& model, std::span<const int32_t> tokens, int64_t n_chunk,
                                    const ChunkSetup& setup, LogitsFileWriter* base, std::FILE* out,
                                    std::FILE* log);

}  // namespace optiq::eval
