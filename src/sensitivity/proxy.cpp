#include "sensitivity/proxy.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "quant/quantize.h"
#include "sensitivity/tensor_kl.h"

namespace optiq::sensitivity {

double proxy_error(const engine::Weight& w, const SourceTensor& tensor, GgmlType type, const float* importance,
                   bool is_lookup, bool from_source) {
  const engine::Weight q = candidate_weight(w, tensor, type, importance, from_source);
  const SourceTensor* source = from_source ? &tensor : nullptr;
  double weighted = 0, plain = 0;
#pragma omp parallel reduction(+ : weighted, plain)
  {
    std::vector<float> a(static_cast<size_t>(w.n_in)), b(a.size());
#pragma omp for schedule(static)
    for (int64_t r = 0; r < w.n_out; ++r) {
      const int32_t id = static_cast<int32_t>(r);
      if (source) read_rows_f32(*source, static_cast<uint64_t>(r), 1, a.data());
      else engine::get_rows(w, std::span(&id, 1), a.data());
      engine::get_rows(q, std::span(&id, 1), b.data());
      for (int64_t c = 0; c < w.n_in; ++c) {
        const double d = static_cast<double>(a[c]) - b[c];
        plain += d * d;
        if (importance) weighted += importance[c] * d * d;
      }
    }
  }
  return weighted + (is_lookup ? plain / static_cast<double>(w.n_out) : 0.0);
}

namespace {

std::vector<double> ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t i, size_t j) { return x[i] < x[j]; });
  std::vector<double> r(x.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && x[order[j + 1]] == x[order[i]]) ++j;
    const double average = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) r[order[k]] = average;
    i = j + 1;
  }
  return r;
}

}  // namespace

double spearman_correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = a.size();
  if (n < 2 || b.size() != n) return std::numeric_limits<double>::quiet_NaN();
  const std::vector<double> ra = ranks(a), rb = ranks(b);
  const double mean = 0.5 * static_cast<double>(n + 1);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  if (saa == 0 || sbb == 0) return std::numeric_limits<double>::quiet_NaN();
  return sab / std::sqrt(saa * sbb);
}

}  // namespace optiq::sensitivity
