// What the Google Benchmark programs share.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace optiq::bench {

// n values drawn from N(0, 1), the same for the same seed.
inline std::vector<float> gaussian_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace optiq::bench
