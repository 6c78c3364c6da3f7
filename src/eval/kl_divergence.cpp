#include "eval/kl_divergence.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>

namespace optiq::eval {
namespace {

// Mean of a quantity from its sum and sum of squares, with the standard error of the mean
// (0 for 10 or fewer samples, as llama-perplexity reports it).
struct MeanError {
  double mean = 0, error = 0;
};

MeanError mean_error(double sum, double sum2, int64_t count) {
  if (count < 1) return {};
  const double n = static_cast<double>(count);
  const double mean = sum / n;
  const double variance = sum2 / n - mean * mean;
  return {mean, variance > 0 && count > 10 ? std::sqrt(variance / (n - 1)) : 0.0};
}

// Covariance of the means of a and b (0 below 10 samples).
double covariance_of_means(double sum_a, double sum_b, double sum_ab, int64_t count) {
  if (count < 10) return 0.0;
  const double n = static_cast<double>(count);
  return (sum_ab / n - (sum_a / n) * (sum_b / n)) / (n - 1);
}

// Linear interpolation between the two sorted values around fraction * (n - 1), in float.
float percentile(const std::vector<float>& sorted, float fraction) {
  if (fraction <= 0) return sorted.front();
  if (fraction >= 1) return sorted.back();
  float at = fraction * static_cast<float>(sorted.size() - 1);
  const auto below = static_cast<size_t>(at);
  at -= static_cast<float>(below);
  return (1 - at) * sorted[below] + at * sorted[std::min(below + 1, sorted.size() - 1)];
}

float median(const std::vector<float>& sorted) {
  const size_t n = sorted.size();
  return n % 2 == 0 ? 0.5f * (sorted[n / 2] + sorted[n / 2 - 1]) : sorted[n / 2];
}

// ln(PPL(Q)/PPL(base)) and its uncertainty.
MeanError log_ppl_ratio(const KldSums& s) {
  const MeanError q = mean_error(s.nll, s.nll2, s.count), b = mean_error(s.nll_base, s.nll_base2, s.count);
  const double cov = covariance_of_means(s.nll, s.nll_base, s.nll_nll_base, s.count);
  return {q.mean - b.mean, std::sqrt(q.error * q.error + b.error * b.error - 2.0 * cov)};
}

// RMS of dp and its uncertainty (from the mean and error of dp^2).
MeanError rms_p_diff(const KldSums& s) {
  const MeanError mse = mean_error(s.p_diff2, s.p_diff4, s.count);
  const double rms = std::sqrt(mse.mean);
  return {rms, 0.5 / rms * mse.error};
}

MeanError same_top(const KldSums& s) {
  const double p = static_cast<double>(s.n_same_top) / static_cast<double>(s.count);
  return {p, std::sqrt(p * (1 - p) / static_cast<double>(s.count - 1))};
}

void print_chunk_row(std::FILE* out, int64_t chunk, const KldSums& s) {
  const MeanError log_ppl = mean_error(s.nll, s.nll2, s.count);
  const double ppl = std::exp(log_ppl.mean);
  const MeanError ratio = log_ppl_ratio(s), kld = mean_error(s.kld, s.kld2, s.count);
  const MeanError rms = rms_p_diff(s), top = same_top(s);
  std::fprintf(out, "%4lld    %9.4lf ± %9.4lf    %10.5lf ± %10.5lf    %10.5lf ± %10.5lf    %6.3lf ± %6.3lf %%    %6.3lf ± %6.3lf %%\n",
               static_cast<long long>(chunk), ppl, ppl * log_ppl.error, ratio.mean, ratio.error, kld.mean, kld.error,
               100.0 * rms.mean, 100.0 * rms.error, 100.0 * top.mean, 100.0 * top.error);
}

}  // namespace

std::pair<double, float> kld_token(const float* logits, int64_t n_vocab, const uint16_t* base_row, int32_t next,
                                   KldSums& sums) {
  float max = logits[0];
  int64_t top = 0;
  for (int64_t i = 1; i < n_vocab; ++i)
    if (logits[i] > max) max = logits[i], top = i;
  double sum_exp = 0.0;
  for (int64_t i = 0; i < n_vocab; ++i) sum_exp += std::exp(logits[i] - max);
  const float log_z = max + static_cast<float>(std::log(sum_exp));  // log of the partition sum
  float scale, min_log_prob;
  std::memcpy(&scale, base_row, 4);
  std::memcpy(&min_log_prob, base_row + 2, 4);

  const float nll = log_z - logits[next];
  const float nll_base = -decode_log_prob(base_row, next, scale, min_log_prob);
  sums.nll += nll;
  sums.nll2 += nll * nll;
  sums.nll_base += nll_base;
  sums.nll_base2 += nll_base * nll_base;
  sums.nll_nll_base += nll * nll_base;

  double kld = 0;
  int64_t top_base = 0;
  float top_base_log_prob = 0;
  for (int64_t i = 0; i < n_vocab; ++i) {
    const float log_p_base = decode_log_prob(base_row, i, scale, min_log_prob);
    if (i == 0 || log_p_base > top_base_log_prob) top_base_log_prob = log_p_base, top_base = i;
    // Below e^-16 the base's code is clamped: those tokens carry no information.
    if (log_p_base > -16.f) kld += std::exp(log_p_base) * (log_p_base - logits[i] + log_z);
  }
  sums.kld += kld;
  sums.kld2 += kld * kld;
  ++sums.count;
  if (top == top_base) ++sums.n_same_top;

  const float p_diff = std::exp(-nll) - std::exp(-nll_base);
  const double p_diff2 = p_diff * p_diff;
  sums.p_diff += p_diff;
  sums.p_diff2 += p_diff2;
  sums.p_diff4 += p_diff2 * p_diff2;
  sums.max_p_diff = std::max(sums.max_p_diff, std::fabs(p_diff));
  return {kld, p_diff};
}

KldResult compute_kl_divergence(const engine::Model& model, const LogitsFile& base, int64_t n_chunk,
                                const ChunkSetup& setup, std::FILE* out, std::FILE* log) {
  const int64_t n_ctx = setup.n_ctx, first = n_ctx / 2, n_vocab = model.hp.n_vocab;
  const int64_t n_scored = scored_per_chunk(n_ctx), words = row_words(n_vocab);
  engine::KVCache cache = engine::make_kv_cache(model, n_ctx, setup.kv);
  std::vector<float> logits;  // [n_ctx - first, n_vocab]
  KldResult result;
  for (int64_t c = 0; c < n_chunk; ++c) {
    const auto t0 = std::chrono::steady_clock::now();
    chunk_logits(model, cache, chunk_input(base.tokens(), c, setup), setup, logits);
    const int32_t* next = base.tokens().data() + c * n_ctx + first + 1;
    const uint16_t* rows = base.chunk_rows(c);
    for (int64_t i = 0; i < n_scored; ++i) {
      const auto [kld, p_diff] = kld_token(logits.data() + i * n_vocab, n_vocab, rows + i * words, next[i], result.sums);
      result.kld_values.push_back(static_cast<float>(kld));
      result.p_diff_values.push_back(p_diff);
    }
    if (c == 0) {
      if (log) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(log, "kl-divergence: %.2f seconds per chunk, about %.2f minutes for %lld chunks\n", s,
                     s * static_cast<double>(n_chunk) / 60, static_cast<long long>(n_chunk));
      }
      std::fprintf(out, "chunk             PPL               ln(PPL(Q)/PPL(base))          KL Divergence              Δp RMS            Same top p\n");
    }
    print_chunk_row(out, c + 1, result.sums);
    std::fflush(out);
  }
  std::fprintf(out, "\n");
  return result;
}

void print_kld_summary(const KldResult& result, std::FILE* out) {
  const KldSums& s = result.sums;
  std::vector<float> kld = result.kld_values, p_diff = result.p_diff_values;
  std::sort(kld.begin(), kld.end());
  std::sort(p_diff.begin(), p_diff.end());

  std::fprintf(out, "====== Perplexity statistics ======\n");
  const MeanError log_ppl = mean_error(s.nll, s.nll2, s.count);
  const double ppl = std::exp(log_ppl.mean), ppl_error = ppl * log_ppl.error;
  std::fprintf(out, "Mean PPL(Q)                   : %10.6lf ± %10.6lf\n", ppl, ppl_error);
  const MeanError log_ppl_base = mean_error(s.nll_base, s.nll_base2, s.count);
  const double ppl_base = std::exp(log_ppl_base.mean), ppl_base_error = ppl_base * log_ppl_base.error;
  std::fprintf(out, "Mean PPL(base)                : %10.6lf ± %10.6lf\n", ppl_base, ppl_base_error);
  const double cov = covariance_of_means(s.nll, s.nll_base, s.nll_nll_base, s.count);
  std::fprintf(out, "Cor(ln(PPL(Q)), ln(PPL(base))): %6.2lf%%\n", 100.0 * cov / (log_ppl.error * log_ppl_base.error));
  const MeanError ratio = log_ppl_ratio(s);
  std::fprintf(out, "Mean ln(PPL(Q)/PPL(base))     : %10.6lf ± %10.6lf\n", ratio.mean, ratio.error);
  const double ppl_ratio = std::exp(ratio.mean);
  std::fprintf(out, "Mean PPL(Q)/PPL(base)         : %10.6lf ± %10.6lf\n", ppl_ratio, ppl_ratio * ratio.error);
  // Uncertainty of a difference of correlated quantities: var(a) + var(b) - 2 cov(a, b).
  const double ppl_cov = ppl * ppl_base * cov;
  std::fprintf(out, "Mean PPL(Q)-PPL(base)         : %10.6lf ± %10.6lf\n", ppl - ppl_base,
               std::sqrt(ppl_error * ppl_error + ppl_base_error * ppl_base_error - 2.0 * ppl_cov));
  std::fprintf(out, "\n");

  std::fprintf(out, "====== KL divergence statistics ======\n");
  const MeanError mean_kld = mean_error(s.kld, s.kld2, s.count);
  std::fprintf(out, "Mean    KLD: %10.6lf ± %10.6lf\n", mean_kld.mean, mean_kld.error);
  std::fprintf(out, "Maximum KLD: %10.6f\n", kld.back());
  std::fprintf(out, "99.9%%   KLD: %10.6f\n", percentile(kld, 0.999f));
  std::fprintf(out, "99.0%%   KLD: %10.6f\n", percentile(kld, 0.990f));
  std::fprintf(out, "95.0%%   KLD: %10.6f\n", percentile(kld, 0.950f));
  std::fprintf(out, "90.0%%   KLD: %10.6f\n", percentile(kld, 0.900f));
  std::fprintf(out, "Median  KLD: %10.6f\n", median(kld));
  std::fprintf(out, "10.0%%   KLD: %10.6f\n", percentile(kld, 0.100f));
  std::fprintf(out, " 5.0%%   KLD: %10.6f\n", percentile(kld, 0.050f));
  std::fprintf(out, " 1.0%%   KLD: %10.6f\n", percentile(kld, 0.010f));
  std::fprintf(out, " 0.1%%   KLD: %10.6f\n", percentile(kld, 0.001f));
  std::fprintf(out, "Minimum KLD: %10.6f\n", kld.front());
  std::fprintf(out, "\n");

  std::fprintf(out, "====== Token probability statistics ======\n");
  const MeanError mean_p_diff = mean_error(s.p_diff, s.p_diff2, s.count);
  std::fprintf(out, "Mean    Δp: %6.3lf ± %5.3lf %%\n", 100.0 * mean_p_diff.mean, 100.0 * mean_p_diff.error);
  std::fprintf(out, "Maximum Δp: %6.3lf%%\n", 100.0 * p_diff.back());
  const std::pair<const char*, float> levels[] = {{"99.9%", 0.999f}, {"99.0%", 0.990f}, {"95.0%", 0.950f},
                                                  {"90.0%", 0.900f}, {"75.0%", 0.750f}};
  for (const auto& [label, f] : levels) std::fprintf(out, "%s   Δp: %6.3lf%%\n", label, 100.0 * percentile(p_diff, f));
  std::fprintf(out, "Median  Δp: %6.3lf%%\n", 100.0 * median(p_diff));
  const std::pair<const char*, float> low_levels[] = {{"25.0%", 0.250f}, {"10.0%", 0.100f}, {" 5.0%", 0.050f},
                                                      {" 1.0%", 0.010f}, {" 0.1%", 0.001f}};
  for (const auto& [label, f] : low_levels) std::fprintf(out, "%s   Δp: %6.3lf%%\n", label, 100.0 * percentile(p_diff, f));
  std::fprintf(out, "Minimum Δp: %6.3lf%%\n", 100.0 * p_diff.front());
  const MeanError rms = rms_p_diff(s), top = same_top(s);
  std::fprintf(out, "RMS Δp    : %6.3lf ± %5.3lf %%\n", 100.0 * rms.mean, 100.0 * rms.error);
  std::fprintf(out, "Same top p: %6.3lf ± %5.3lf %%\n", 100.0 * top.mean, 100.0 * top.error);
}

}  // namespace optiq::eval
