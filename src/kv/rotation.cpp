#include "kv/rotation.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <stdexcept>
#include <string>

namespace optiq::kv {
namespace {

// Uniform in (0, 1]: 53 random bits of mt19937_64 (whose output sequence the standard fixes).
double uniform_open0(std::mt19937_64& rng) { return (static_cast<double>(rng() >> 11) + 1.0) * 0x1p-53; }

// Standard normals by the Box-Muller transform, two per pair of uniforms.
std::vector<double> gaussian_matrix(int64_t n, std::mt19937_64& rng) {
  std::vector<double> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform_open0(rng)));
    const double t = 2.0 * std::numbers::pi * uniform_open0(rng);
    g[i] = r * std::cos(t);
    if (i + 1 < n) g[i + 1] = r * std::sin(t);
  }
  return g;
}

// Orthonormalizes the columns of the column-major [d, d] matrix `a` in place by modified
// Gram-Schmidt, each column projected twice (one pass loses orthogonality in proportion to the
// condition number; a second pass restores it to rounding). The result is the Q of a = QR with
// diag(R) > 0, which for a Gaussian `a` is Haar-distributed.
void orthonormalize_columns(std::vector<double>& a, int64_t d) {
  for (int64_t j = 0; j < d; ++j) {
    double* col = a.data() + j * d;
    for (int pass = 0; pass < 2; ++pass) {
      for (int64_t k = 0; k < j; ++k) {
        const double* q = a.data() + k * d;
        double dot = 0.0;
        for (int64_t i = 0; i < d; ++i) dot += q[i] * col[i];
        for (int64_t i = 0; i < d; ++i) col[i] -= dot * q[i];
      }
    }
    double norm = 0.0;
    for (int64_t i = 0; i < d; ++i) norm += col[i] * col[i];
    norm = std::sqrt(norm);
    for (int64_t i = 0; i < d; ++i) col[i] /= norm;
  }
}

// In-place unnormalized Walsh-Hadamard transform of x[0, n), n a power of two.
void walsh_hadamard(float* x, int64_t n) {
  for (int64_t half = 1; half < n; half *= 2) {
    for (int64_t base = 0; base < n; base += 2 * half) {
      for (int64_t i = base; i < base + half; ++i) {
        const float a = x[i], b = x[i + half];
        x[i] = a + b;
        x[i + half] = a - b;
      }
    }
  }
}

}  // namespace

Rotation::Rotation(int64_t dim, RotationKind kind, uint64_t seed) : dim_(dim), kind_(kind) {
  if (dim < 1) throw std::invalid_argument("rotation: dimension " + std::to_string(dim) + " is not positive");
  std::mt19937_64 rng(seed);
  if (kind == RotationKind::Hadamard) {
    if ((dim & (dim - 1)) != 0)
      throw std::invalid_argument("rotation: a Hadamard rotation needs a power-of-two dimension, not " +
                                  std::to_string(dim));
    signs_.resize(static_cast<size_t>(dim));
    for (auto& s : signs_) s = (rng() >> 63) ? -1.0f : 1.0f;
    return;
  }
  std::vector<double> a = gaussian_matrix(dim * dim, rng);
  orthonormalize_columns(a, dim);
  // Column j of Q is a[j*d ...]; R = Q stored row-major: R[i][j] = Q[i][j] = a[j*d + i].
  matrix_.resize(static_cast<size_t>(dim * dim));
  for (int64_t i = 0; i < dim; ++i)
    for (int64_t j = 0; j < dim; ++j) matrix_[i * dim + j] = static_cast<float>(a[j * dim + i]);
}

void Rotation::apply(const float* x, float* y) const {
  if (kind_ == RotationKind::Hadamard) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(dim_));
    for (int64_t i = 0; i < dim_; ++i) y[i] = x[i] * signs_[i];
    walsh_hadamard(y, dim_);
    for (int64_t i = 0; i < dim_; ++i) y[i] *= scale;
    return;
  }
  std::vector<float> in(x, x + dim_);
  for (int64_t i = 0; i < dim_; ++i) {
    const float* row = matrix_.data() + i * dim_;
    float acc = 0.0f;
    for (int64_t j = 0; j < dim_; ++j) acc += row[j] * in[j];
    y[i] = acc;
  }
}

void Rotation::apply_inverse(const float* y, float* x) const {
  if (kind_ == RotationKind::Hadamard) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(dim_));
    if (x != y)
      for (int64_t i = 0; i < dim_; ++i) x[i] = y[i];
    walsh_hadamard(x, dim_);
    for (int64_t i = 0; i < dim_; ++i) x[i] *= scale * signs_[i];
    return;
  }
  std::vector<float> in(y, y + dim_);
  for (int64_t j = 0; j < dim_; ++j) x[j] = 0.0f;
  for (int64_t i = 0; i < dim_; ++i) {
    const float* row = matrix_.data() + i * dim_;
    for (int64_t j = 0; j < dim_; ++j) x[j] += in[i] * row[j];
  }
}

std::vector<float> Rotation::matrix() const {
  if (kind_ == RotationKind::Dense) return matrix_;
  std::vector<float> m(static_cast<size_t>(dim_ * dim_));
  std::vector<float> e(static_cast<size_t>(dim_)), col(static_cast<size_t>(dim_));
  for (int64_t j = 0; j < dim_; ++j) {
    std::fill(e.begin(), e.end(), 0.0f);
    e[j] = 1.0f;
    apply(e.data(), col.data());
    for (int64_t i = 0; i < dim_; ++i) m[i * dim_ + j] = col[i];
  }
  return m;
}

uint64_t layer_rotation_seed(uint64_t seed, int64_t layer) {
  // splitmix64's finalizer over seed + golden-ratio steps: neighbouring layers get unrelated seeds.
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(layer + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace optiq::kv
