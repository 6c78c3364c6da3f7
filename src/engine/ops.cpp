#include "engine/ops.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/threads.h"
#include "quant/dot.h"
#include "quant/float16.h"

namespace optiq::engine {

void rms_norm(const float* x, const float* w, int64_t n_tokens, int64_t n, float eps, float* out) {
  for (int64_t t = 0; t < n_tokens; ++t) {
    const float* xt = x + t * n;
    float* ot = out + t * n;
    double sum = 0.0;  // ggml sums the squares in ggml_float (double)
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(xt[i]) * xt[i];
    const float mean = static_cast<float>(sum / static_cast<double>(n));
    const float scale = 1.0f / std::sqrt(mean + eps);
    for (int64_t i = 0; i < n; ++i) ot[i] = (xt[i] * scale) * w[i];
  }
}

void rope(RopeType type, float* x, int64_t n_heads, int64_t head_dim, int64_t n_rot, int64_t pos,
          float freq_base, float freq_scale, const float* freq_factors) {
  // ggml walks the frequencies by repeated multiplication with base^(-2/n_rot); doing the same
  // keeps the angles bit-close to llama.cpp's.
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
  // Offset from the first to the second element of a pair, and from one pair to the next.
  const int64_t pair_gap = type == RopeType::Norm ? 1 : n_rot / 2;
  const int64_t pair_step = type == RopeType::Norm ? 2 : 1;
  float theta = static_cast<float>(pos);
  for (int64_t i = 0; i < n_rot / 2; ++i) {
    const float ff = freq_factors ? freq_factors[i] : 1.0f;
    const float angle = freq_scale * (theta / ff);
    const float c = std::cos(angle), s = std::sin(angle);
    for (int64_t h = 0; h < n_heads; ++h) {
      float* p = x + h * head_dim + i * pair_step;
      const float a = p[0], b = p[pair_gap];
      p[0] = a * c - b * s;
      p[pair_gap] = a * s + b * c;
    }
    theta *= theta_scale;
  }
}

void hadamard_transform(float* x, int64_t n, int64_t width) {
  const float scale = 1.0f / std::sqrt(static_cast<float>(width));
  for (float* c = x; c < x + n; c += width) {
    for (int64_t j = 0; j < width; ++j) c[j] *= scale;
    for (int64_t span = 1; span < width; span *= 2)
      for (int64_t i = 0; i < width; i += 2 * span)
        for (int64_t j = i; j < i + span; ++j) {
          const float u = c[j], v = c[j + span];
          c[j] = u + v;
          c[j + span] = u - v;
        }
  }
}

namespace {

[[gnu::target("avx2,fma")]] void mad_fma(float* y, const float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = __builtin_fmaf(x[i], a, y[i]);
}
void mad_portable(float* y, const float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(x[i], a, y[i]);
}

}  // namespace

void mad(float* y, const float* x, float a, int64_t n) {
  static const auto kernel = dot_isa_available(DotIsa::Avx2) ? mad_fma : mad_portable;
  kernel(y, x, a, n);
}

void softmax(float* x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = x[i] > max ? x[i] : max;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void log_softmax(const float* logits, int64_t n, float* out) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = logits[i] > max ? logits[i] : max;
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(static_cast<double>(logits[i]) - max);
  const double log_z = max + std::log(sum);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(logits[i] - log_z);
}

int64_t argmax(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

void swiglu(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    gate[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

void geglu(float* gate, const float* up, int64_t n) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f, kCoef = 0.044715f;
  for (int64_t i = 0; i < n; ++i) {
    const float x = gate[i];
    float g;
    if (x <= -10.0f) {
      g = 0.0f;
    } else if (x >= 10.0f) {
      g = x;
    } else {
      const float xh = f16_to_f32(f32_to_f16(x));
      g = f16_to_f32(f32_to_f16(0.5f * xh * (1.0f + std::tanh(kSqrt2OverPi * xh * (1.0f + kCoef * xh * xh)))));
    }
    gate[i] = g * up[i];
  }
}

namespace {

// Visible positions of the token at position `last`: first .. last (causal, and within the
// sliding window when there is one).
int64_t first_visible(int64_t last, int64_t window) {
  return window > 0 ? std::max<int64_t>(0, last - window + 1) : 0;
}

// Decode and short batches: one (token, query head) pair at a time.
void attention_by_pair(const float* q, const float* k, const float* v, int64_t n_tokens, int64_t pos0,
                       int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, int64_t window,
                       int threads, float* out) {
  const int64_t kv_stride = n_head_kv * head_dim;  // floats per cached position
  const int64_t n_items = n_tokens * n_head;
  const VecDotFn dot = vec_dot_kernel(GgmlType::F32);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores(static_cast<size_t>(pos0 + n_tokens));  // [positions visible]
#pragma omp for schedule(static)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t t = item / n_head, h = item % n_head;
      const int64_t last = pos0 + t, first = first_visible(last, window);
      const int64_t n_visible = last - first + 1;
      const int64_t g = kv_head_of(h, n_head, n_head_kv);
      const float* qh = q + (t * n_head + h) * head_dim;
      for (int64_t j = 0; j < n_visible; ++j)
        scores[static_cast<size_t>(j)] = dot(head_dim, k + (first + j) * kv_stride + g * head_dim, qh) * scale;
      softmax(scores.data(), n_visible);
      float* oh = out + (t * n_head + h) * head_dim;
      std::fill(oh, oh + head_dim, 0.0f);
      for (int64_t j = 0; j < n_visible; ++j)
        mad(oh, v + (first + j) * kv_stride + g * head_dim, scores[static_cast<size_t>(j)], head_dim);
    }
  }
}

// Prefill: per query head, scores = scale * Q Kᵀ and out = P V as two sgemm calls over all
// tokens of the batch, the masked entries zeroed after the softmax.
void attention_by_head(const float* q, const float* k, const float* v, int64_t n_tokens, int64_t pos0,
                       int64_t n_head, int64_t n_head_kv, int64_t head_dim, float scale, int64_t window,
                       int threads, float* out) {
  const int64_t n_ctx = pos0 + n_tokens;           // positions any token of the batch may see
  const int kv_stride = static_cast<int>(n_head_kv * head_dim);
  const int q_stride = static_cast<int>(n_head * head_dim);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores(static_cast<size_t>(n_tokens * n_ctx));  // [n_tokens, n_ctx]
#pragma omp for schedule(static)
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t g = kv_head_of(h, n_head, n_head_kv);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(n_ctx),
                  static_cast<int>(head_dim), scale, q + h * head_dim, q_stride, k + g * head_dim, kv_stride, 0.0f,
                  scores.data(), static_cast<int>(n_ctx));
      for (int64_t t = 0; t < n_tokens; ++t) {
        float* row = scores.data() + t * n_ctx;
        const int64_t last = pos0 + t, first = first_visible(last, window);
        softmax(row + first, last - first + 1);
        std::fill(row, row + first, 0.0f);
        std::fill(row + last + 1, row + n_ctx, 0.0f);
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n_tokens), static_cast<int>(head_dim),
                  static_cast<int>(n_ctx), 1.0f, scores.data(), static_cast<int>(n_ctx), v + g * head_dim, kv_stride,
                  0.0f, out + h * head_dim, q_stride);
    }
  }
}

}  // namespace

int attention_threads(int64_t work) { return work < 32'768 ? 1 : num_threads(); }

void causal_attention(const float* q, const float* k, const float* v, int64_t n_tokens,
                      int64_t pos0, int64_t n_head, int64_t n_head_kv, int64_t head_dim,
                      float scale, int64_t window, float* out) {
  const int threads = attention_threads(n_tokens * n_head * (pos0 + n_tokens) * head_dim);
  if (n_tokens >= kAttentionGemmTokens)
    attention_by_head(q, k, v, n_tokens, pos0, n_head, n_head_kv, head_dim, scale, window, threads, out);
  else
    attention_by_pair(q, k, v, n_tokens, pos0, n_head, n_head_kv, head_dim, scale, window, threads, out);
}

}  // namespace optiq::engine
