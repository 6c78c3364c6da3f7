#include "engine/low_rank.h"

#include <algorithm>
#include <vector>

#include "engine/ops.h"
#include "engine/threads.h"
#include "quant/dot.h"

namespace optiq::engine {
namespace {

// Outputs per work item of the B product: a few cache lines of each row of Bᵀ.
constexpr int64_t kOutputChunk = 128;

}  // namespace

void add_low_rank(const LowRankDelta& d, const float* x, int64_t n_tokens, float* y) {
  const int64_t n_in = d.target->n_in, n_out = d.target->n_out, r = d.rank;
  const VecDotFn dot = vec_dot_kernel(GgmlType::F32);
  std::vector<float> u(static_cast<size_t>(n_tokens * r));  // [n_tokens, rank]: scale · A·x
  const int64_t n_chunks = (n_out + kOutputChunk - 1) / kOutputChunk;
  // Both factors stream from memory once per pass (an adapter on every projection of a small
  // model is a fifth of its quantized bytes): both threads read, one half each.
  const int threads = n_tokens * (n_in + n_out) * r >= 8192 ? num_threads() : 1;
#pragma omp parallel num_threads(threads)
  {
#pragma omp for schedule(static)
    for (int64_t j = 0; j < r; ++j)
      for (int64_t t = 0; t < n_tokens; ++t)
        u[static_cast<size_t>(t * r + j)] = d.scale * dot(n_in, d.a + j * n_in, x + t * n_in);
#pragma omp for schedule(static)
    for (int64_t c = 0; c < n_chunks; ++c) {
      const int64_t o0 = c * kOutputChunk, len = std::min(kOutputChunk, n_out - o0);
      for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t j = 0; j < r; ++j) mad(y + t * n_out + o0, d.b_t + j * n_out + o0, u[static_cast<size_t>(t * r + j)], len);
    }
  }
}

}  // namespace optiq::engine
