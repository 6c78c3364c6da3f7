#include "kv/lloyd_max.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>
#include <stdexcept>
#include <string>
#include <utility>

namespace optiq::kv {
namespace {

void check_args(int64_t dim, int bits) {
  if (dim < kLloydMaxMinDim)
    throw std::invalid_argument("Lloyd-Max codebook: dimension " + std::to_string(dim) + " is below " +
                                std::to_string(kLloydMaxMinDim));
  if (bits < 1 || bits > kLloydMaxMaxBits)
    throw std::invalid_argument("Lloyd-Max codebook: " + std::to_string(bits) + " bits is outside 1.." +
                                std::to_string(kLloydMaxMaxBits));
}

// f_d in log form: log C_d + (d-3)/2 * log(1 - x^2).
struct Density {
  double log_norm;  // log of the normalizing constant C_d
  double exponent;  // (d - 3) / 2

  explicit Density(int64_t dim)
      : log_norm(std::lgamma(0.5 * static_cast<double>(dim)) - 0.5 * std::log(std::numbers::pi) -
                 std::lgamma(0.5 * static_cast<double>(dim - 1))),
        exponent(0.5 * static_cast<double>(dim - 3)) {}

  double operator()(double x) const {
    if (x <= -1.0 || x >= 1.0) return exponent == 0.0 && std::abs(x) == 1.0 ? std::exp(log_norm) : 0.0;
    return std::exp(log_norm + exponent * std::log1p(-x * x));
  }
};

// Moments of f from the left end of the support: mass ∫ f, first ∫ x f, second ∫ x^2 f.
struct Moments {
  double mass = 0.0;
  double first = 0.0;
  double second = 0.0;
};

// Simpson's rule for the moments over [a, b] with one panel (3 points).
Moments simpson_panel(const Density& f, double a, double b) {
  const double m = 0.5 * (a + b), fa = f(a), fm = f(m), fb = f(b), h6 = (b - a) / 6.0;
  return {h6 * (fa + 4.0 * fm + fb), h6 * (a * fa + 4.0 * m * fm + b * fb),
          h6 * (a * a * fa + 4.0 * m * m * fm + b * b * fb)};
}

// The moments of f over [-reach, x] for any x, from a table of cumulative moments on a fine
// grid (panels of width reach/4096, each accurate to about 1e-16 for the dimensions the
// engine meets) plus one Simpson panel from the grid point below x. A Lloyd iteration then
// costs a few density evaluations per cell instead of an integration over it.
class CumulativeMoments {
 public:
  CumulativeMoments(const Density& f, double reach) : f_(f), reach_(reach), h_(2.0 * reach / kPanels) {
    table_.resize(kPanels + 1);
    for (int j = 0; j < kPanels; ++j) {
      const Moments p = simpson_panel(f, -reach + h_ * j, -reach + h_ * (j + 1));
      table_[j + 1] = {table_[j].mass + p.mass, table_[j].first + p.first, table_[j].second + p.second};
    }
  }

  Moments at(double x) const {
    if (x <= -reach_) return {};
    if (x >= reach_) return table_.back();
    const int j = std::min(kPanels - 1, static_cast<int>((x + reach_) / h_));
    const Moments p = simpson_panel(f_, -reach_ + h_ * j, x);
    return {table_[j].mass + p.mass, table_[j].first + p.first, table_[j].second + p.second};
  }

 private:
  static constexpr int kPanels = 8192;
  const Density& f_;
  double reach_;                // support used: [-reach, reach]
  double h_;                    // panel width
  std::vector<Moments> table_;  // [kPanels + 1] moments over [-reach, -reach + j h]
};

}  // namespace

double unit_coordinate_density(int64_t dim, double x) {
  check_args(dim, 1);
  return Density(dim)(x);
}

LloydMaxCodebook compute_lloyd_max(int64_t dim, int bits) {
  check_args(dim, bits);
  const Density f(dim);
  const int cells = 1 << bits;
  const double sigma = 1.0 / std::sqrt(static_cast<double>(dim));
  // Beyond 12 standard deviations the density is below e^-70 of its peak (for d > 144, where
  // this clips at all): the outer cells are integrated over the part that carries mass.
  const double reach = std::min(1.0, 12.0 * sigma);
  const CumulativeMoments cumulative(f, reach);

  // Start from cells evenly spread over +-3 sigma; the density is log-concave, so the Lloyd
  // iteration has one fixed point and reaches it from any ordered start.
  std::vector<double> c(cells), edge(cells + 1);
  for (int i = 0; i < cells; ++i) c[i] = sigma * (-3.0 + 6.0 * (i + 0.5) / cells);
  edge[0] = -reach;
  edge[cells] = reach;
  const double tolerance = 1e-11 * sigma;
  for (int iter = 0; iter < 20000; ++iter) {
    for (int i = 1; i < cells; ++i) edge[i] = 0.5 * (c[i - 1] + c[i]);
    double moved = 0.0;
    for (int i = 0; i < cells; ++i) {
      const Moments lo = cumulative.at(edge[i]), hi = cumulative.at(edge[i + 1]);
      const Moments m{hi.mass - lo.mass, hi.first - lo.first, 0.0};
      // An empty cell (possible only far out in a tail) keeps its centroid at its middle.
      const double next = m.mass > 0.0 ? m.first / m.mass : 0.5 * (edge[i] + edge[i + 1]);
      moved = std::max(moved, std::abs(next - c[i]));
      c[i] = next;
    }
    if (moved < tolerance) break;
  }

  // The density is even: make the codebook exactly symmetric (the iteration leaves asymmetries
  // of the order of its tolerance).
  for (int i = 0; i < cells / 2; ++i) {
    const double half = 0.5 * (c[cells - 1 - i] - c[i]);
    c[i] = -half;
    c[cells - 1 - i] = half;
  }
  LloydMaxCodebook book;
  book.dim = dim;
  book.bits = bits;
  for (int i = 1; i < cells; ++i) edge[i] = 0.5 * (c[i - 1] + c[i]);
  for (int i = 0; i < cells; ++i) {
    const Moments lo = cumulative.at(edge[i]), hi = cumulative.at(edge[i + 1]);
    const Moments m{hi.mass - lo.mass, hi.first - lo.first, hi.second - lo.second};
    book.coordinate_mse += m.second - 2.0 * c[i] * m.first + c[i] * c[i] * m.mass;
    book.centroids.push_back(static_cast<float>(c[i]));
  }
  for (int i = 1; i < cells; ++i) book.boundaries.push_back(static_cast<float>(edge[i]));
  return book;
}

const LloydMaxCodebook& lloyd_max_codebook(int64_t dim, int bits) {
  static std::mutex mutex;
  static std::map<std::pair<int64_t, int>, std::unique_ptr<LloydMaxCodebook>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& slot = cache[{dim, bits}];
  if (!slot) slot = std::make_unique<LloydMaxCodebook>(compute_lloyd_max(dim, bits));
  return *slot;
}

}  // namespace optiq::kv
