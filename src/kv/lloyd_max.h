// Lloyd-Max scalar quantizers for one coordinate of a uniformly random unit vector in R^d.
// After a random rotation every coordinate of a unit vector has the density
//   f_d(x) = Gamma(d/2) / (sqrt(pi) Gamma((d-1)/2)) * (1 - x^2)^((d-3)/2),  x in [-1, 1]
// (a Beta((d-1)/2, (d-1)/2) law stretched to [-1, 1]; variance 1/d), so one codebook per
// (d, bits) is optimal for every coordinate of every vector (TurboQuant, arXiv 2504.19874).
// The codebooks are computed here by iterating the two Lloyd conditions (each centroid is the
// conditional mean of its cell, each boundary the midpoint of its neighbours) with numerical
// integration of f_d; no tabulated values.
#pragma once

#include <cstdint>
#include <vector>

namespace optiq::kv {

struct LloydMaxCodebook {
  int64_t dim = 0;                 // d: the dimension whose coordinate law this quantizes
  int bits = 0;                    // b: 2^b cells
  std::vector<float> centroids;    // [2^b] reconstruction values, strictly increasing, in (-1, 1)
  std::vector<float> boundaries;   // [2^b - 1] cell edges, boundaries[i] between centroids i, i+1
  double coordinate_mse = 0.0;     // E[(x - Q(x))^2] for one coordinate under f_d
  // d * coordinate_mse: the expected ||u - Q(u)||^2 of a unit vector u quantized coordinate-wise
  // (the paper's D_mse: about 0.36, 0.117, 0.03, 0.009 at b = 1..4 for large d).
  double unit_vector_mse() const { return static_cast<double>(dim) * coordinate_mse; }
};

// Smallest and largest supported arguments. d = 2 has a density that is infinite at +-1.
inline constexpr int64_t kLloydMaxMinDim = 3;
inline constexpr int kLloydMaxMaxBits = 4;

// Computes the codebook (about a millisecond; 15 ms at d = 1024, 4 bits).
// Throws std::invalid_argument for dim < 3 or bits outside 1..4.
LloydMaxCodebook compute_lloyd_max(int64_t dim, int bits);

// The same, computed once per (dim, bits) per process and kept; safe to call from any thread.
// The reference stays valid for the life of the process.
const LloydMaxCodebook& lloyd_max_codebook(int64_t dim, int bits);

// f_d(x) (normalized; 0 outside [-1, 1]). Throws std::invalid_argument for dim < 3.
double unit_coordinate_density(int64_t dim, double x);

}  // namespace optiq::kv
