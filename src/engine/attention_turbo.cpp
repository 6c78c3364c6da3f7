#include "engine/attention_turbo.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/ops.h"
#include "engine/threads.h"
#include "quant/dot.h"
#include "quant/float16.h"
#include "quant/quantize.h"

namespace optiq::engine {
namespace {

// One side (K or V) of a layer's cache, read a head at a time.
struct CacheSide {
  KVType type;
  const kv::TurboQuantizer* turbo;  // TurboQuant rows, or null
  size_t head_bytes;                // bytes of one head inside a position's row
  int64_t dim;                      // head width

  CacheSide(KVType t, const kv::TurboQuantizer* q, int64_t head_dim)
      : type(t), turbo(q), head_bytes(0), dim(head_dim) {
    if (turbo) head_bytes = turbo->row_bytes();
    else head_bytes = static_cast<size_t>(*ggml_row_bytes(kv_ggml_type(type), static_cast<uint64_t>(dim)));
  }

  // Head g of a stored row as floats: [dim], in the rotated space for TurboQuant. Returns the
  // row itself for F32, else buf.
  const float* floats(const uint8_t* row, int64_t g, float* buf) const {
    const uint8_t* head = row + static_cast<size_t>(g) * head_bytes;
    if (turbo) {
      turbo->dequantize_rotated(head, buf);
      return buf;
    }
    switch (type) {
      case KVType::F32: return reinterpret_cast<const float*>(head);
      case KVType::F16: f16_to_f32_n(reinterpret_cast<const uint16_t*>(head), buf, static_cast<size_t>(dim)); return buf;
      default: dequantize_row(kv_ggml_type(type), head, buf, dim); return buf;
    }
  }
};

int64_t first_visible(int64_t last, int64_t window) { return window > 0 ? std::max<int64_t>(0, last - window + 1) : 0; }

// Batches: the cache decoded once into floats (rotated spaces for TurboQuant sides), then the
// float attention of ops.h.
void attention_decoded(const float* q, const LayerKVCache& kv, const CacheSide& ks, const CacheSide& vs,
                       int64_t n_tokens, int64_t pos0, int64_t n_head, float scale, int64_t window, float* out) {
  const int64_t D = kv.head_dim(), n_head_kv = kv.n_head_kv(), n_ctx = pos0 + n_tokens;
  const int64_t first = first_visible(pos0, window);  // the earliest position any token sees
  std::vector<float> k(static_cast<size_t>(n_ctx * n_head_kv * D), 0.0f), v(k.size(), 0.0f);
  for (int64_t p = first; p < n_ctx; ++p)
    for (int64_t g = 0; g < n_head_kv; ++g) {
      float* kd = k.data() + (p * n_head_kv + g) * D;
      float* vd = v.data() + (p * n_head_kv + g) * D;
      if (const float* src = ks.floats(kv.k_row(p), g, kd); src != kd) std::memcpy(kd, src, D * sizeof(float));
      if (const float* src = vs.floats(kv.v_row(p), g, vd); src != vd) std::memcpy(vd, src, D * sizeof(float));
    }
  std::vector<float> q_rot;
  if (ks.turbo) {
    q_rot.assign(q, q + n_tokens * n_head * D);
    for (int64_t r = 0; r < n_tokens * n_head; ++r) ks.turbo->rotation().apply(q_rot.data() + r * D, q_rot.data() + r * D);
    q = q_rot.data();
  }
  causal_attention(q, k.data(), v.data(), n_tokens, pos0, n_head, n_head_kv, D, scale, window, out);
  if (vs.turbo)
    for (int64_t r = 0; r < n_tokens * n_head; ++r) vs.turbo->unrotate(out + r * D, out + r * D);
}

// y += x * a over n floats with fused multiply-adds, vectorized where the CPU has AVX2.
[[gnu::target("avx2,fma")]] void mad_fma(float* y, const float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = __builtin_fmaf(x[i], a, y[i]);
}
void mad_portable(float* y, const float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += x[i] * a;
}

// Decode: scores from codes, values summed from codes, per (token, KV head) with the query
// heads that share it: each TurboQuant row is decoded once for the whole group
// (TurboQuantizer::score_rows / accumulate_rows).
void attention_from_codes(const float* q, const LayerKVCache& kv, const CacheSide& ks, const CacheSide& vs,
                          int64_t n_tokens, int64_t pos0, int64_t n_head, float scale, int64_t window, float* out) {
  const int64_t D = kv.head_dim(), n_head_kv = kv.n_head_kv();
  const int64_t group = n_head / n_head_kv, n_items = n_tokens * n_head_kv;
  const int64_t q_floats = ks.turbo ? ks.turbo->query_floats() : D;  // per prepared query head
  const VecDotFn dot = vec_dot_kernel(GgmlType::F32);
  const auto mad = dot_isa_available(DotIsa::Avx2) ? mad_fma : mad_portable;
  const int64_t work = n_tokens * n_head * (pos0 + n_tokens) * D;
  const int threads = work < 100'000 ? 1 : num_threads();
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> prepared(static_cast<size_t>(group * q_floats));         // [group, q_floats]
    std::vector<float> scores(static_cast<size_t>(group * (pos0 + n_tokens)));  // [group, visible]
    std::vector<float> acc(static_cast<size_t>(group * D));                     // [group, D]
    std::vector<float> buf(static_cast<size_t>(D));                             // one decoded head
#pragma omp for schedule(static)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t t = item / n_head_kv, g = item % n_head_kv;
      const int64_t last = pos0 + t, first = first_visible(last, window), n_vis = last - first + 1;
      for (int64_t j = 0; j < group; ++j) {
        const float* qh = q + (t * n_head + g * group + j) * D;
        if (ks.turbo) ks.turbo->prepare_query(qh, prepared.data() + j * q_floats);
        else std::copy_n(qh, D, prepared.data() + j * q_floats);
      }
      if (ks.turbo) {
        ks.turbo->score_rows(prepared.data(), group, kv.k_row(first) + static_cast<size_t>(g) * ks.head_bytes,
                             kv.k_row_bytes(), n_vis, scale, scores.data(), n_vis);
      } else {
        for (int64_t p = first; p <= last; ++p) {
          const float* kf = ks.floats(kv.k_row(p), g, buf.data());
          for (int64_t j = 0; j < group; ++j)
            scores[static_cast<size_t>(j * n_vis + p - first)] = scale * dot(D, kf, prepared.data() + j * q_floats);
        }
      }
      for (int64_t j = 0; j < group; ++j) softmax(scores.data() + j * n_vis, n_vis);
      std::fill(acc.begin(), acc.end(), 0.0f);
      if (vs.turbo) {
        vs.turbo->accumulate_rows(acc.data(), group, scores.data(), n_vis,
                                  kv.v_row(first) + static_cast<size_t>(g) * vs.head_bytes, kv.v_row_bytes(), n_vis);
      } else {
        for (int64_t p = first; p <= last; ++p) {
          const float* vf = vs.floats(kv.v_row(p), g, buf.data());
          for (int64_t j = 0; j < group; ++j)
            mad(acc.data() + j * D, vf, scores[static_cast<size_t>(j * n_vis + p - first)], D);
        }
      }
      for (int64_t j = 0; j < group; ++j) {
        float* oh = out + (t * n_head + g * group + j) * D;
        if (vs.turbo) vs.turbo->unrotate(acc.data() + j * D, oh);
        else std::copy_n(acc.data() + j * D, D, oh);
      }
    }
  }
}

}  // namespace

void causal_attention_turbo(const float* q, const LayerKVCache& kv, int64_t n_tokens, int64_t pos0,
                            int64_t n_head, float scale, int64_t window, float* out) {
  const CacheSide ks(kv.k_type(), kv.k_turbo(), kv.head_dim()), vs(kv.v_type(), kv.v_turbo(), kv.head_dim());
  if (n_tokens >= kAttentionGemmTokens)
    attention_decoded(q, kv, ks, vs, n_tokens, pos0, n_head, scale, window, out);
  else
    attention_from_codes(q, kv, ks, vs, n_tokens, pos0, n_head, scale, window, out);
}

}  // namespace optiq::engine
