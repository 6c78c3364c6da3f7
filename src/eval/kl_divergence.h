// KL divergence of a model against reference log-probabilities (a base file, see
// logits_file.h), computed and reported the way llama-perplexity --kl-divergence does: the
// same chunks and scored positions as perplexity, and per scored token
//   KLD    = sum_i p_base(i) * (log p_base(i) - log p(i))  over tokens with log p_base > -16
//   nll    = -log p(next), nll_base = -log p_base(next)
//   dp     = p(next) - p_base(next)
//   same top: argmax of the logits == argmax of the base log-probabilities
// A table row after each chunk (running PPL(Q), ln(PPL(Q)/PPL(base)), KLD, RMS dp, same-top
// rate, each ± its standard error), then summary statistics: PPL ratios with uncertainties
// that account for the correlation of the two runs, KLD and dp percentiles.
#pragma once

#include <cstdint>
#include <cstdio>
#include <utility>
#include <vector>

#include "engine/model.h"
#include "eval/logits_file.h"
#include "eval/perplexity.h"

namespace optiq::eval {

// Running sums over scored tokens (double where llama.cpp keeps double).
struct KldSums {
  double nll = 0, nll2 = 0;            // sum of nll, nll^2 of the model under test
  double nll_base = 0, nll_base2 = 0;  // the same for the base
  double nll_nll_base = 0;             // sum of nll * nll_base (their covariance)
  double kld = 0, kld2 = 0;            // sum of KLD, KLD^2
  double p_diff = 0, p_diff2 = 0, p_diff4 = 0;  // sums of dp, dp^2, dp^4
  float max_p_diff = 0;                // largest |dp|
  int64_t n_same_top = 0;              // tokens whose top candidate agrees
  int64_t count = 0;                   // scored tokens
};

// One scored token: logits [n_vocab] of the model under test, base_row one base-file row
// (row_words(n_vocab) words), `next` the token that follows. Adds to `sums`; returns
// (KLD, dp) of this token.
std::pair<double, float> kld_token(const float* logits, int64_t n_vocab, const uint16_t* base_row, int32_t next,
                                   KldSums& sums);

struct KldResult {
  KldSums sums;
  std::vector<float> kld_values;     // [count] per-token KLD, in evaluation order
  std::vector<float> p_diff_values;  // [count] per-token dp
};

// Evaluates chunks 0 .. n_chunk-1 of the base file's tokens (n_chunk <= base.n_chunk()) with
// `model`, printing the per-chunk table to `out` and the seconds per chunk to `log`.
KldResult compute_kl_divergence(const engine::Model& model, const LogitsFile& base, int64_t n_chunk,
                                const ChunkSetup& setup, std::FILE* out, std::FILE* log);

// The summary llama-perplexity prints at the end (nothing when fewer than 100 tokens were
// scored, too few for the statistics): perplexity, KL divergence and token probability
// statistics.
void print_kld_summary(const KldResult& result, std::FILE* out);

}  // namespace optiq::eval
