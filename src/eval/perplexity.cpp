#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace optiq::eval {

std::string read_perplexity_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, std::nullopt, "cannot open the text file");
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  if (!text.empty() && text.back() == '\n') text.pop_back();
  return text;
}

std::vector<int32_t> chunk_input(std::span<const int32_t> tokens, int64_t c, const ChunkSetup& setup) {
  const auto begin = tokens.begin() + c * setup.n_ctx;
  std::vector<int32_t> chunk(begin, begin + setup.n_ctx);
  if (setup.bos >= 0) chunk[0] = setup.bos;
  return chunk;
}

void chunk_logits(const engine::Model& model, engine::KVCache& cache, std::span<const int32_t> chunk,
                  const ChunkSetup& setup, std::vector<float>& out) {
  const int64_t n_ctx = setup.n_ctx, first = n_ctx / 2, n_vocab = model.hp.n_vocab;
  out.resize(static_cast<size_t>((n_ctx - first) * n_vocab));
  cache.clear();
  // Forward calls end at multiples of n_batch and at `first`: before it only the cache is
  // needed, so those calls skip the vocabulary projection of all but their last token.
  std::vector<float> last_row(static_cast<size_t>(n_vocab));
  for (int64_t pos = 0; pos < n_ctx;) {
    const int64_t batch_end = std::min((pos / setup.n_batch + 1) * setup.n_batch, n_ctx);
    const int64_t end = pos < first ? std::min(batch_end, first) : batch_end;
    const auto batch = chunk.subspan(static_cast<size_t>(pos), static_cast<size_t>(end - pos));
    if (pos < first)
      engine::forward(model, cache, batch, /*all_logits=*/false, last_row.data());
    else
      engine::forward(model, cache, batch, /*all_logits=*/true, out.data() + (pos - first) * n_vocab);
    pos = end;
  }
}

double token_nll(const float* logits, int64_t n_vocab, int32_t token) {
  float max = logits[0];
  for (int64_t i = 1; i < n_vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - max);
  return -(static_cast<double>(logits[token] - max) - std::log(sum));
}

PerplexityEstimate estimate_perplexity(double nll_sum, double nll2_sum, int64_t count) {
  PerplexityEstimate e;
  const double mean = nll_sum / static_cast<double>(count);
  const double variance = nll2_sum / static_cast<double>(count) - mean * mean;
  e.ppl = std::exp(mean);
  if (variance > 0) {
    e.error = std::sqrt(variance / static_cast<double>(count - 1)) * e.ppl;
    e.has_error = true;
  }
  return e;
}

PerplexityResult compute_perplexity(const engine::Model& model, std::span<const int32_t> tokens, int64_t n_chunk,
                                    const ChunkSetup& setup, LogitsFileWriter* base, std::FILE* out,
                                    std::FILE* log) {
  const int64_t n_ctx = setup.n_ctx, first = n_ctx / 2, n_vocab = model.hp.n_vocab;
  const int64_t n_scored = scored_per_chunk(n_ctx);
  engine::KVCache cache = engine::make_kv_cache(model, n_ctx, setup.kv);
  std::vector<float> logits;  // [n_ctx - first, n_vocab]
  std::vector<uint16_t> rows(base ? static_cast<size_t>(n_scored * row_words(n_vocab)) : 0);  // [n_scored, row_words]
  PerplexityResult result;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  for (int64_t c = 0; c < n_chunk; ++c) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<int32_t> input = chunk_input(tokens, c, setup);
    chunk_logits(model, cache, input, setup, logits);
    // Row i predicts the original token after position first + i.
    const int32_t* next = tokens.data() + c * n_ctx + first + 1;
    for (int64_t i = 0; i < n_scored; ++i) {
      const float* row = logits.data() + i * n_vocab;
      const double v = base ? encode_log_probs(row, n_vocab, next[i], rows.data() + i * row_words(n_vocab))
                            : token_nll(row, n_vocab, next[i]);
      nll += v;
      nll2 += v * v;
    }
    if (base) base->write_rows(rows.data(), n_scored);
    count += n_scored;
    result.running_ppl.push_back(std::exp(nll / static_cast<double>(count)));
    if (c == 0 && log) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(log, "perplexity: %.2f seconds per chunk, about %.2f minutes for %lld chunks\n", s,
                   s * static_cast<double>(n_chunk) / 60, static_cast<long long>(n_chunk));
    }
    std::fprintf(out, "[%lld]%.4lf,", static_cast<long long>(c + 1), result.running_ppl.back());
    std::fflush(out);
  }
  std::fprintf(out, "\n");
  result.final = estimate_perplexity(nll, nll2, count);
  return result;
}

}  // namespace optiq::eval
