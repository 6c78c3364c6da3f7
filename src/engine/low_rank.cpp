#include "engine/low_rank.h"

#include <vector>

#include "engine/threads.h"
#include "quant/dot.h"

namespace optiq::engine {

void add_low_rank(const LowRankDelta& d, const float* x, int64_t n_tokens, float* y) {
  const int64_t n_in = d.target->n_in, n_out = d.target->n_out, r = d.rank;
  const VecDotFn dot = vec_dot_kernel(GgmlType::F32);
  std::vector<float> u(static_cast<size_t>(n_tokens * r));  // [n_tokens, rank]: A·x, times scale
  for (int64_t t = 0; t < n_tokens; ++t)
    for (int64_t j = 0; j < r; ++j) u[static_cast<size_t>(t * r + j)] = d.scale * dot(n_in, d.a + j * n_in, x + t * n_in);
  const int threads = n_tokens * n_out * r >= (int64_t{1} << 16) ? num_threads() : 1;
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t o = 0; o < n_out; ++o)
    for (int64_t t = 0; t < n_tokens; ++t) y[t * n_out + o] += dot(r, d.b + o * r, u.data() + t * r);
}

}  // namespace optiq::engine
