#include "train/grad_ops.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "engine/threads.h"

namespace optiq::train {
namespace {

// Row tiles of a frozen weight dequantized per gemm call: large enough that a tile's gemm
// amortises packing the activations, small enough to stay in L2 at n_in ~ 4096.
constexpr int64_t kTileRows = 128;
// Vocabulary rows per tile of the head's cross-entropy.
constexpr int64_t kVocabTile = 512;
// Multiply-adds below which a loop stays on one thread.
constexpr int64_t kParallelMinWork = int64_t{1} << 16;

int threads_for(int64_t work) { return work >= kParallelMinWork ? engine::num_threads() : 1; }

// Rows o0 .. o0+rows-1 of w in T: [rows, w.n_in]. `scratch` holds the f32 rows for T = double.
template <typename T>
void weight_tile(const engine::Weight& w, int64_t o0, int64_t rows, std::vector<float>& scratch, std::vector<T>& out) {
  const int64_t n_in = w.n_in;
  out.resize(static_cast<size_t>(rows * n_in));
  if constexpr (std::is_same_v<T, float>) {
    for (int64_t r = 0; r < rows; ++r) engine::dequantize_weight_row(w, o0 + r, out.data() + r * n_in);
  } else {
    scratch.resize(static_cast<size_t>(n_in));
    for (int64_t r = 0; r < rows; ++r) {
      engine::dequantize_weight_row(w, o0 + r, scratch.data());
      std::copy(scratch.begin(), scratch.end(), out.begin() + r * n_in);
    }
  }
}

}  // namespace

template <>
void gemm<float>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

template <>
void gemm<double>(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                  int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<int>(m), static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b,
              static_cast<int>(ldb), beta, c, static_cast<int>(ldc));
}

template <typename T>
void rms_norm_forward(const T* x, const float* w, int64_t rows, int64_t n, float eps, T* y, T* inv_rms) {
#pragma omp parallel for num_threads(threads_for(rows * n)) schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    const T* xt = x + t * n;
    T* yt = y + t * n;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(xt[i]) * xt[i];
    const T r = static_cast<T>(1.0 / std::sqrt(sum / static_cast<double>(n) + eps));
    inv_rms[t] = r;
    for (int64_t i = 0; i < n; ++i) yt[i] = xt[i] * r * w[i];
  }
}

template <typename T>
void rms_norm_backward(const T* x, const float* w, const T* inv_rms, const T* dy, int64_t rows, int64_t n, T* dx) {
#pragma omp parallel for num_threads(threads_for(rows * n)) schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    const T* xt = x + t * n;
    const T* dyt = dy + t * n;
    T* dxt = dx + t * n;
    const T r = inv_rms[t];
    double dot = 0.0;  // Σ_i dy·w·x
    for (int64_t i = 0; i < n; ++i) dot += static_cast<double>(dyt[i]) * w[i] * xt[i];
    const T c = static_cast<T>(dot * r * r * r / static_cast<double>(n));
    for (int64_t i = 0; i < n; ++i) dxt[i] = r * w[i] * dyt[i] - xt[i] * c;
  }
}

template <typename T>
void rope_rows(const RopeParams& p, T* x, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t* pos,
               bool inverse) {
  const int64_t half = p.n_rot / 2;
  const int64_t pair_gap = p.type == engine::RopeType::Norm ? 1 : half;
  const int64_t pair_step = p.type == engine::RopeType::Norm ? 2 : 1;
  // base^(-2i / n_rot) for each pair, divided by its frequency factor.
  std::vector<T> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[static_cast<size_t>(i)] =
        static_cast<T>(std::pow(static_cast<T>(p.freq_base), static_cast<T>(-2.0) * static_cast<T>(i) / static_cast<T>(p.n_rot)) /
                       (p.freq_factors ? static_cast<T>(p.freq_factors[i]) : static_cast<T>(1)));
  const T sign = inverse ? -1 : 1;
#pragma omp parallel for num_threads(threads_for(rows * n_heads * head_dim)) schedule(static)
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t i = 0; i < half; ++i) {
      const T angle = static_cast<T>(p.freq_scale) * static_cast<T>(pos[t]) * inv_freq[static_cast<size_t>(i)];
      const T c = std::cos(angle), s = sign * std::sin(angle);
      for (int64_t h = 0; h < n_heads; ++h) {
        T* q = x + (t * n_heads + h) * head_dim + i * pair_step;
        const T a = q[0], b = q[pair_gap];
        q[0] = a * c - b * s;
        q[pair_gap] = a * s + b * c;
      }
    }
  }
}

namespace {

// f(g) and f'(g) of the gate activation.
template <typename T>
void gate_activation(bool gelu, T g, T& f, T& df) {
  if (gelu) {
    constexpr T kSqrt2OverPi = static_cast<T>(0.79788456080286535588), kCoef = static_cast<T>(0.044715);
    const T inner = kSqrt2OverPi * (g + kCoef * g * g * g);
    const T th = std::tanh(inner);
    f = static_cast<T>(0.5) * g * (1 + th);
    df = static_cast<T>(0.5) * (1 + th) + static_cast<T>(0.5) * g * (1 - th * th) * kSqrt2OverPi * (1 + 3 * kCoef * g * g);
  } else {
    const T sig = 1 / (1 + std::exp(-g));
    f = g * sig;
    df = sig * (1 + g * (1 - sig));
  }
}

}  // namespace

template <typename T>
void glu_forward(bool gelu, const T* gate, const T* up, int64_t n, T* act) {
#pragma omp parallel for num_threads(threads_for(n * 8)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T f, df;
    gate_activation(gelu, gate[i], f, df);
    act[i] = f * up[i];
  }
}

template <typename T>
void glu_backward(bool gelu, const T* gate, const T* up, const T* d_act, int64_t n, T* d_gate, T* d_up) {
#pragma omp parallel for num_threads(threads_for(n * 8)) schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    T f, df;
    gate_activation(gelu, gate[i], f, df);
    d_gate[i] = d_act[i] * up[i] * df;
    d_up[i] = d_act[i] * f;
  }
}

namespace {

// Row i of a head's score matrix sees columns first_visible(i) .. i.
int64_t first_visible(const AttentionShape& s, int64_t i) { return s.window > 0 ? std::max<int64_t>(0, i - s.window + 1) : 0; }

}  // namespace

template <typename T>
void attention_forward(const AttentionShape& s, const T* q, const T* k, const T* v, T* probs, T* out) {
  const int64_t L = s.len, D = s.head_dim, ldq = s.n_head * D, ldk = s.n_head_kv * D;
#pragma omp parallel for num_threads(threads_for(s.n_head * L * L * D)) schedule(static)
  for (int64_t h = 0; h < s.n_head; ++h) {
    const int64_t hk = engine::kv_head_of(h, s.n_head, s.n_head_kv);
    T* p = probs + h * L * L;
    // scores = scale · q_h·k_hᵀ, then a masked softmax per row.
    gemm<T>(false, true, L, L, D, static_cast<T>(s.scale), q + h * D, ldq, k + hk * D, ldk, T(0), p, L);
    for (int64_t i = 0; i < L; ++i) {
      T* row = p + i * L;
      const int64_t j0 = first_visible(s, i);
      T max = -std::numeric_limits<T>::infinity();
      for (int64_t j = j0; j <= i; ++j) max = std::max(max, row[j]);
      double sum = 0.0;
      for (int64_t j = j0; j <= i; ++j) sum += row[j] = std::exp(row[j] - max);
      const T inv = static_cast<T>(1.0 / sum);
      for (int64_t j = 0; j < L; ++j) row[j] = j >= j0 && j <= i ? row[j] * inv : T(0);
    }
    gemm<T>(false, false, L, D, L, T(1), p, L, v + hk * D, ldk, T(0), out + h * D, ldq);
  }
}

template <typename T>
void attention_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* probs, const T* d_out,
                        T* dq, T* dk, T* dv) {
  const int64_t L = s.len, D = s.head_dim, ldq = s.n_head * D, ldk = s.n_head_kv * D;
  // Each query head's share of dk and dv, summed over its group afterwards (heads run in parallel).
  std::vector<T> dk_head(static_cast<size_t>(s.n_head * L * D)), dv_head(dk_head.size());
#pragma omp parallel num_threads(threads_for(s.n_head * L * L * D))
  {
    std::vector<T> ds(static_cast<size_t>(L * L));  // [L, L] d(scores)
#pragma omp for schedule(static)
    for (int64_t h = 0; h < s.n_head; ++h) {
      const int64_t hk = engine::kv_head_of(h, s.n_head, s.n_head_kv);
      const T* p = probs + h * L * L;
      // dP = dO_h · V_hᵀ; dS = P ⊙ (dP − rowsum(P ⊙ dP)).
      gemm<T>(false, true, L, L, D, T(1), d_out + h * D, ldq, v + hk * D, ldk, T(0), ds.data(), L);
      for (int64_t i = 0; i < L; ++i) {
        T* row = ds.data() + i * L;
        const T* prow = p + i * L;
        double dot = 0.0;
        for (int64_t j = 0; j <= i; ++j) dot += static_cast<double>(prow[j]) * row[j];
        for (int64_t j = 0; j < L; ++j) row[j] = prow[j] * (row[j] - static_cast<T>(dot));
      }
      // dQ_h = scale · dS·K_h; dK_h = scale · dSᵀ·Q_h; dV_h = Pᵀ·dO_h.
      gemm<T>(false, false, L, D, L, static_cast<T>(s.scale), ds.data(), L, k + hk * D, ldk, T(0), dq + h * D, ldq);
      gemm<T>(true, false, L, D, L, static_cast<T>(s.scale), ds.data(), L, q + h * D, ldq, T(0),
              dk_head.data() + h * L * D, D);
      gemm<T>(true, false, L, D, L, T(1), p, L, d_out + h * D, ldq, T(0), dv_head.data() + h * L * D, D);
    }
  }
  std::fill(dk, dk + L * ldk, T(0));
  std::fill(dv, dv + L * ldk, T(0));
  for (int64_t h = 0; h < s.n_head; ++h) {
    const int64_t hk = engine::kv_head_of(h, s.n_head, s.n_head_kv);
    for (int64_t i = 0; i < L; ++i)
      for (int64_t d = 0; d < D; ++d) {
        dk[i * ldk + hk * D + d] += dk_head[static_cast<size_t>((h * L + i) * D + d)];
        dv[i * ldk + hk * D + d] += dv_head[static_cast<size_t>((h * L + i) * D + d)];
      }
  }
}

template <typename T>
void frozen_forward(const engine::Weight& w, const T* x, int64_t n, T* y) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  // A whole number of tiles per thread, each at most kTileRows: 576 rows on two threads are
  // four tiles of 144, not five of 128 that leave one thread idle for a fifth of the product.
  const int threads = threads_for(n * n_in * n_out);
  const int64_t per_thread = (n_out + threads * kTileRows - 1) / (threads * kTileRows);
  const int64_t n_tiles = per_thread * threads, tile_rows = (n_out + n_tiles - 1) / n_tiles;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scratch;
    std::vector<T> tile;  // [tile_rows, n_in]
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n_tiles; ++i) {
      const int64_t o0 = i * tile_rows, rows = std::min(tile_rows, n_out - o0);
      if (rows <= 0) continue;
      weight_tile(w, o0, rows, scratch, tile);
      gemm<T>(false, true, n, rows, n_in, T(1), x, n_in, tile.data(), n_in, T(0), y + o0, n_out);
    }
  }
  if (!w.bias.empty())
    for (int64_t t = 0; t < n; ++t)
      for (int64_t o = 0; o < n_out; ++o) y[t * n_out + o] += w.bias[static_cast<size_t>(o)];
}

template <typename T>
void frozen_backward(const engine::Weight& w, const T* dy, int64_t n, T* dx) {
  const int64_t n_in = w.n_in, n_out = w.n_out;
  const int threads = threads_for(n * n_in * n_out);
  // Threads take contiguous blocks of token rows (dx rows are theirs alone), each walking all
  // tiles; dequantizing a tile per thread costs little next to its gemm once n is large.
  const int64_t per_thread = (n + threads - 1) / threads;
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scratch;
    std::vector<T> tile;
#pragma omp for schedule(static)
    for (int64_t part = 0; part < threads; ++part) {
      const int64_t t0 = part * per_thread, rows_t = std::min(per_thread, n - t0);
      if (rows_t <= 0) continue;
      for (int64_t o0 = 0; o0 < n_out; o0 += kTileRows) {
        const int64_t rows = std::min(kTileRows, n_out - o0);
        weight_tile(w, o0, rows, scratch, tile);
        gemm<T>(false, false, rows_t, n_in, rows, T(1), dy + t0 * n_out + o0, n_out, tile.data(), n_in, T(1),
                dx + t0 * n_in, n_in);
      }
    }
  }
}

template <typename T>
void low_rank_forward(const LowRankShape& s, const T* a, const T* b, const T* x, int64_t n, T* u, T* y) {
  gemm<T>(false, true, n, s.rank, s.n_in, T(1), x, s.n_in, a, s.n_in, T(0), u, s.rank);
  gemm<T>(false, true, n, s.n_out, s.rank, static_cast<T>(s.scale), u, s.rank, b, s.rank, T(1), y, s.n_out);
}

template <typename T>
void low_rank_backward(const LowRankShape& s, const T* a, const T* b, const T* x, const T* u, const T* dy, int64_t n,
                       T* grad_a, T* grad_b, T* dx) {
  const T scale = static_cast<T>(s.scale);
  // grad_b += scale · dyᵀ·u; du = scale · dy·B; grad_a += duᵀ·x; dx += du·A.
  gemm<T>(true, false, s.n_out, s.rank, n, scale, dy, s.n_out, u, s.rank, T(1), grad_b, s.rank);
  std::vector<T> du(static_cast<size_t>(n * s.rank));
  gemm<T>(false, false, n, s.rank, s.n_out, scale, dy, s.n_out, b, s.rank, T(0), du.data(), s.rank);
  gemm<T>(true, false, s.rank, s.n_in, n, T(1), du.data(), s.rank, x, s.n_in, T(1), grad_a, s.n_in);
  gemm<T>(false, false, n, s.n_in, s.rank, T(1), du.data(), s.rank, a, s.n_in, T(1), dx, s.n_in);
}

template <typename T>
double head_cross_entropy(const engine::Weight& head, float softcap, const T* hn_all, std::span<const int32_t> labels_all,
                          double weight, T* d_hn_all) {
  const int64_t E = head.n_in, V = head.n_out;
  // Only labelled rows matter: gather them ([n, E]) so the tiles multiply nothing else.
  std::vector<int64_t> rows;
  for (size_t t = 0; t < labels_all.size(); ++t)
    if (labels_all[t] >= 0) rows.push_back(static_cast<int64_t>(t));
  const auto n = static_cast<int64_t>(rows.size());
  if (n == 0) return 0.0;
  std::vector<T> hn(static_cast<size_t>(n * E));
  std::vector<int32_t> labels(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    std::copy_n(hn_all + rows[static_cast<size_t>(r)] * E, E, hn.begin() + r * E);
    labels[static_cast<size_t>(r)] = labels_all[static_cast<size_t>(rows[static_cast<size_t>(r)])];
    if (labels[static_cast<size_t>(r)] >= V) throw std::invalid_argument("head_cross_entropy: label outside the vocabulary");
  }
  const int64_t n_tiles = (V + kVocabTile - 1) / kVocabTile;
  const int threads = threads_for(n * E * V);
  // Pass 1: per row, the running max and Σexp over the vocabulary (merged over threads), and
  // the label's logit.
  std::vector<double> max(static_cast<size_t>(n), -std::numeric_limits<double>::infinity());
  std::vector<double> sum(static_cast<size_t>(n), 0.0), label_logit(static_cast<size_t>(n), 0.0);
  auto capped = [softcap](T z) { return softcap > 0 ? static_cast<T>(softcap) * std::tanh(z / static_cast<T>(softcap)) : z; };
  // Each thread's running max and sum, merged in thread order afterwards so that the result
  // does not depend on which thread finishes first (a resumed run repeats a run bit for bit).
  std::vector<std::vector<double>> part_max(static_cast<size_t>(threads)), part_sum(static_cast<size_t>(threads));
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scratch;
    std::vector<T> tile, z(static_cast<size_t>(n * kVocabTile));
    std::vector<double>& my_max = part_max[static_cast<size_t>(omp_get_thread_num())];
    std::vector<double>& my_sum = part_sum[static_cast<size_t>(omp_get_thread_num())];
    my_max.assign(static_cast<size_t>(n), -std::numeric_limits<double>::infinity());
    my_sum.assign(static_cast<size_t>(n), 0.0);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n_tiles; ++i) {
      const int64_t v0 = i * kVocabTile, cols = std::min(kVocabTile, V - v0);
      weight_tile(head, v0, cols, scratch, tile);
      gemm<T>(false, true, n, cols, E, T(1), hn.data(), E, tile.data(), E, T(0), z.data(), cols);
      for (int64_t r = 0; r < n; ++r) {
        double m = my_max[static_cast<size_t>(r)], s = my_sum[static_cast<size_t>(r)];
        for (int64_t c = 0; c < cols; ++c) {
          const double zc = capped(z[static_cast<size_t>(r * cols + c)]);
          if (zc > m) s = s * std::exp(m - zc) + 1.0, m = zc;
          else s += std::exp(zc - m);
          if (v0 + c == labels[static_cast<size_t>(r)]) label_logit[static_cast<size_t>(r)] = zc;
        }
        my_max[static_cast<size_t>(r)] = m, my_sum[static_cast<size_t>(r)] = s;
      }
    }
  }
  for (size_t th = 0; th < part_max.size(); ++th)
    for (size_t r = 0; r < static_cast<size_t>(n); ++r) {
      if (part_sum[th].empty() || part_sum[th][r] == 0.0) continue;
      const double m = std::max(max[r], part_max[th][r]);
      sum[r] = sum[r] * std::exp(max[r] - m) + part_sum[th][r] * std::exp(part_max[th][r] - m);
      max[r] = m;
    }
  std::vector<double> log_z(static_cast<size_t>(n));
  double loss = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    log_z[static_cast<size_t>(r)] = max[static_cast<size_t>(r)] + std::log(sum[static_cast<size_t>(r)]);
    loss += log_z[static_cast<size_t>(r)] - label_logit[static_cast<size_t>(r)];
  }
  if (!d_hn_all) return loss;
  // Pass 2: dz = weight · (softmax − onehot) through the cap, d_hn += dz·tile per thread.
  std::vector<std::vector<T>> part_d(static_cast<size_t>(threads));  // [thread][n, E], summed in order
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scratch;
    std::vector<T> tile, z(static_cast<size_t>(n * kVocabTile));
    std::vector<T>& my_d = part_d[static_cast<size_t>(omp_get_thread_num())];
    my_d.assign(static_cast<size_t>(n * E), T(0));
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n_tiles; ++i) {
      const int64_t v0 = i * kVocabTile, cols = std::min(kVocabTile, V - v0);
      weight_tile(head, v0, cols, scratch, tile);
      gemm<T>(false, true, n, cols, E, T(1), hn.data(), E, tile.data(), E, T(0), z.data(), cols);
      for (int64_t r = 0; r < n; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          T& zc = z[static_cast<size_t>(r * cols + c)];
          const T raw = zc;
          const double p = std::exp(static_cast<double>(capped(raw)) - log_z[static_cast<size_t>(r)]);
          double dz = weight * (p - (v0 + c == labels[static_cast<size_t>(r)] ? 1.0 : 0.0));
          if (softcap > 0) {
            const T th = std::tanh(raw / static_cast<T>(softcap));
            dz *= 1.0 - static_cast<double>(th) * th;
          }
          zc = static_cast<T>(dz);
        }
      gemm<T>(false, false, n, E, cols, T(1), z.data(), cols, tile.data(), E, T(1), my_d.data(), E);
    }
  }
  for (const std::vector<T>& d : part_d)
    for (int64_t r = 0; r < n && !d.empty(); ++r)
      for (int64_t e = 0; e < E; ++e) d_hn_all[rows[static_cast<size_t>(r)] * E + e] += d[static_cast<size_t>(r * E + e)];
  return loss;
}

#define OPTIQ_GRAD_OPS_INSTANTIATE(T)                                                                              \
  template void rms_norm_forward<T>(const T*, const float*, int64_t, int64_t, float, T*, T*);                      \
  template void rms_norm_backward<T>(const T*, const float*, const T*, const T*, int64_t, int64_t, T*);            \
  template void rope_rows<T>(const RopeParams&, T*, int64_t, int64_t, int64_t, const int32_t*, bool);              \
  template void glu_forward<T>(bool, const T*, const T*, int64_t, T*);                                             \
  template void glu_backward<T>(bool, const T*, const T*, const T*, int64_t, T*, T*);                              \
  template void attention_forward<T>(const AttentionShape&, const T*, const T*, const T*, T*, T*);                 \
  template void attention_backward<T>(const AttentionShape&, const T*, const T*, const T*, const T*, const T*, T*, \
                                      T*, T*);                                                                     \
  template void frozen_forward<T>(const engine::Weight&, const T*, int64_t, T*);                                   \
  template void frozen_backward<T>(const engine::Weight&, const T*, int64_t, T*);                                  \
  template void low_rank_forward<T>(const LowRankShape&, const T*, const T*, const T*, int64_t, T*, T*);           \
  template void low_rank_backward<T>(const LowRankShape&, const T*, const T*, const T*, const T*, const T*,       \
                                     int64_t, T*, T*, T*);                                                         \
  template double head_cross_entropy<T>(const engine::Weight&, float, const T*, std::span<const int32_t>, double,  \
                                        T*);
OPTIQ_GRAD_OPS_INSTANTIATE(float)
OPTIQ_GRAD_OPS_INSTANTIATE(double)
#undef OPTIQ_GRAD_OPS_INSTANTIATE

}  // namespace optiq::train
