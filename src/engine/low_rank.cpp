#include "engine/low_rank.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/threads.h"
#include "quant/dot.h"
#include "quant/float16.h"

namespace optiq::engine {
namespace {

// Outputs per work item of the B product: a few cache lines of each row of Bᵀ.
constexpr int64_t kOutputChunk = 128;

// sum_i f16(w[i]) · x[i] over n values.
[[gnu::target("avx2,fma,f16c")]] float dot_f16_f32_avx2(int64_t n, const uint16_t* w, const float* x) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i))),
                           _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + i + 8))),
                           _mm256_loadu_ps(x + i + 8), acc1);
  }
  const __m256 acc = _mm256_add_ps(acc0, acc1);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float sum = _mm_cvtss_f32(s);
  for (; i < n; ++i) sum += _cvtsh_ss(w[i]) * x[i];
  return sum;
}
float dot_f16_f32_portable(int64_t n, const uint16_t* w, const float* x) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += f16_to_f32(w[i]) * x[i];
  return sum;
}

// y[i] += a · f16(row[i]) over n values.
[[gnu::target("avx2,fma,f16c")]] void mad_f16_avx2(float* y, const uint16_t* row, float a, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + i))), va,
                                            _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] = __builtin_fmaf(_cvtsh_ss(row[i]), a, y[i]);
}
void mad_f16_portable(float* y, const uint16_t* row, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(f16_to_f32(row[i]), a, y[i]);
}

}  // namespace

void add_low_rank(const LowRankDelta& d, const float* x, int64_t n_tokens, float* y) {
  static const bool avx2 = dot_isa_available(DotIsa::Avx2);
  const auto dot = avx2 ? dot_f16_f32_avx2 : dot_f16_f32_portable;
  const auto mad = avx2 ? mad_f16_avx2 : mad_f16_portable;
  const int64_t n_in = d.target->n_in, n_out = d.target->n_out, r = d.rank;
  std::vector<float> u(static_cast<size_t>(n_tokens * r));  // [n_tokens, rank]: scale · A·x
  const int64_t n_chunks = (n_out + kOutputChunk - 1) / kOutputChunk;
  // Both factors stream from memory once per pass (an adapter on every projection of a small
  // model is a tenth of its quantized bytes): both threads read, one half each.
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
