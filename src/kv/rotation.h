// The random rotation TurboQuant applies to every key and value head vector before quantizing
// it: after it, each coordinate of a unit vector follows the same known law (see lloyd_max.h)
// whatever the input's outlier channels were. Two kinds:
//   Dense     a Haar-random orthogonal matrix: the Q of the QR factorization of a d x d matrix of
//             independent standard normals, with R's diagonal made positive. O(d^2) per vector.
//   Hadamard  (1/sqrt(d)) H diag(s): random signs s then the Walsh-Hadamard transform H, for d a
//             power of two. O(d log d) per vector; coordinates are close to, not exactly, the
//             Haar law for vectors with a few large entries.
// Both are determined by (dim, kind, seed): mt19937_64 and a Box-Muller transform written here,
// not std distributions, whose output differs between standard libraries.
#pragma once

#include <cstdint>
#include <vector>

namespace optiq::kv {

enum class RotationKind { Dense, Hadamard };

class Rotation {
 public:
  // Throws std::invalid_argument for dim < 1, or a Hadamard dim that is not a power of two.
  Rotation(int64_t dim, RotationKind kind, uint64_t seed);

  int64_t dim() const { return dim_; }
  RotationKind kind() const { return kind_; }

  // y = R x. x, y: [dim]; they may be the same array.
  void apply(const float* x, float* y) const;
  // x = R^T y, the inverse. y, x: [dim]; they may be the same array.
  void apply_inverse(const float* y, float* x) const;
  // R as a row-major [dim, dim] matrix (for tests: R^T R = I).
  std::vector<float> matrix() const;

 private:
  int64_t dim_ = 0;
  RotationKind kind_ = RotationKind::Dense;
  std::vector<float> matrix_;  // Dense: R row-major [dim, dim]; Hadamard: empty
  std::vector<float> signs_;   // Hadamard: the diagonal s, [dim] of +-1; Dense: empty
};

// A seed for layer `layer` derived from a model-wide seed, so each layer gets its own rotation.
uint64_t layer_rotation_seed(uint64_t seed, int64_t layer);

}  // namespace optiq::kv
