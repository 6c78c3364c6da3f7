#include "engine/attention_turbo.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include <cblas.h>

#include "engine/ops.h"
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

// Calls f(p) for every position of first..last outside the codes span: those read their f16 rows.
template <class F>
void for_each_f16_position(int64_t first, int64_t last, LayerKVCache::Span codes, F&& f) {
  const int64_t sink_end = std::min(codes.lo, last + 1);
  for (int64_t p = first; p < sink_end; ++p) f(p);
  for (int64_t p = std::max(codes.hi + 1, sink_end); p <= last; ++p) f(p);
}

// A query head q [D] as TurboQuant keys of KV head g are scored: q / a channel by channel into
// q_codes [D] (a = kv.k_scale()), and the return value q . m (m = kv.k_offset()), the part of
// q . k the codes (of a * (k - m)) do not hold.
float query_for_key_codes(const LayerKVCache& kv, const float* q, int64_t g, float* q_codes) {
  const int64_t D = kv.head_dim();
  const float* a = kv.k_scale().data() + g * D;
  const float* m = kv.k_offset().data() + g * D;
  float qm = 0.0f;
  for (int64_t i = 0; i < D; ++i) {
    q_codes[i] = q[i] / a[i];
    qm += q[i] * m[i];
  }
  return qm;
}

// Head g of position p's f16 row as floats: [dim] into buf.
const float* f16_head(const uint16_t* row, int64_t g, int64_t dim, float* buf) {
  f16_to_f32_n(row + g * dim, buf, static_cast<size_t>(dim));
  return buf;
}

// Batches: the cache decoded once into floats (rotated spaces for TurboQuant sides), then per
// query head two sgemm (scores, output) as in ops.h's float attention. Positions with f16 rows
// (kv.codes_span) get their scores from the f16 keys and their values added from the f16
// values, per query.
void attention_decoded(const float* q, const LayerKVCache& kv, const CacheSide& ks, const CacheSide& vs,
                       int64_t n_tokens, int64_t pos0, int64_t n_head, float scale, int64_t window, float* out) {
  const int64_t D = kv.head_dim(), n_head_kv = kv.n_head_kv(), n_ctx = pos0 + n_tokens;
  const int64_t group = n_head / n_head_kv, kv_stride = n_head_kv * D, q_stride = n_head * D;
  const int64_t first = first_visible(pos0, window);  // the earliest position any token sees
  // k, v: the rows as attention reads them from codes or storage; kx, vx: the f16 rows of
  // TurboQuant sides, unrotated (zeros where a position has none). All [n_ctx, n_head_kv, D].
  std::vector<float> k(static_cast<size_t>(n_ctx * kv_stride), 0.0f), v(k.size(), 0.0f);
  std::vector<float> kx(ks.turbo ? k.size() : 0, 0.0f), vx(vs.turbo ? k.size() : 0, 0.0f);
  for (int64_t p = first; p < n_ctx; ++p) {
    const uint16_t* kf16 = ks.turbo ? kv.k_f16_row(p) : nullptr;
    const uint16_t* vf16 = vs.turbo ? kv.v_f16_row(p) : nullptr;
    if (kf16) f16_to_f32_n(kf16, kx.data() + p * kv_stride, static_cast<size_t>(kv_stride));
    if (vf16) f16_to_f32_n(vf16, vx.data() + p * kv_stride, static_cast<size_t>(kv_stride));
    for (int64_t g = 0; g < n_head_kv; ++g) {
      float* kd = k.data() + p * kv_stride + g * D;
      float* vd = v.data() + p * kv_stride + g * D;
      if (const float* src = ks.floats(kv.k_row(p), g, kd); src != kd) std::memcpy(kd, src, D * sizeof(float));
      if (const float* src = vs.floats(kv.v_row(p), g, vd); src != vd) std::memcpy(vd, src, D * sizeof(float));
    }
  }
  std::vector<float> q_rot;  // queries as K's codes are scored: rotated q / a
  std::vector<float> q_offset(static_cast<size_t>(n_tokens * n_head), 0.0f);  // [n_tokens, n_head] q . m
  const float* qs = q;  // queries in K's space
  if (ks.turbo) {
    q_rot.resize(static_cast<size_t>(n_tokens * q_stride));
    for (int64_t r = 0; r < n_tokens * n_head; ++r) {
      float* qr = q_rot.data() + r * D;
      q_offset[static_cast<size_t>(r)] = query_for_key_codes(kv, q + r * D, (r % n_head) / group, qr);
      ks.turbo->rotation().apply(qr, qr);
    }
    qs = q_rot.data();
  }
  const VecDotFn dot = vec_dot_kernel(GgmlType::F32);
  const int threads = attention_threads(n_tokens * n_head * n_ctx * D);
  const int64_t max_f16 = kv.max_f16_positions();
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> scores(static_cast<size_t>(n_tokens * n_ctx));  // [n_tokens, n_ctx]
    // [n_tokens, max_f16]: the weights of each token's f16 value rows, in for_each order
    std::vector<float> f16_weight(vs.turbo ? static_cast<size_t>(n_tokens * max_f16) : 0);
#pragma omp for schedule(static)
    for (int64_t h = 0; h < n_head; ++h) {
      const int64_t g = h / group;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_tokens), static_cast<int>(n_ctx),
                  static_cast<int>(D), scale, qs + h * D, static_cast<int>(q_stride), k.data() + g * D,
                  static_cast<int>(kv_stride), 0.0f, scores.data(), static_cast<int>(n_ctx));
      for (int64_t t = 0; t < n_tokens; ++t) {
        float* row = scores.data() + t * n_ctx;
        const int64_t last = pos0 + t, lo = first_visible(last, window);
        const LayerKVCache::Span codes = kv.codes_span(lo, last);
        const float shift = scale * q_offset[static_cast<size_t>(t * n_head + h)];
        for (int64_t p = codes.lo; p <= codes.hi; ++p) row[p] += shift;
        if (ks.turbo)
          for_each_f16_position(lo, last, codes, [&](int64_t p) {
            row[p] = scale * dot(D, q + (t * n_head + h) * D, kx.data() + p * kv_stride + g * D);
          });
        softmax(row + lo, last - lo + 1);
        std::fill(row, row + lo, 0.0f);
        std::fill(row + last + 1, row + n_ctx, 0.0f);
        if (vs.turbo) {
          float* w = f16_weight.data() + t * max_f16;
          for_each_f16_position(lo, last, codes, [&](int64_t p) { *w++ = std::exchange(row[p], 0.0f); });
        }
      }
      float* oh = out + h * D;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(n_tokens), static_cast<int>(D),
                  static_cast<int>(n_ctx), 1.0f, scores.data(), static_cast<int>(n_ctx), v.data() + g * D,
                  static_cast<int>(kv_stride), 0.0f, oh, static_cast<int>(q_stride));
      if (!vs.turbo) continue;
      for (int64_t t = 0; t < n_tokens; ++t) {
        float* ot = oh + t * q_stride;
        vs.turbo->unrotate(ot, ot);
        const int64_t last = pos0 + t, lo = first_visible(last, window);
        const float* w = f16_weight.data() + t * max_f16;
        for_each_f16_position(lo, last, kv.codes_span(lo, last), [&](int64_t p) {
          const float* vp = vx.data() + p * kv_stride + g * D;
          const float wp = *w++;
          for (int64_t i = 0; i < D; ++i) ot[i] += wp * vp[i];
        });
      }
    }
  }
}

// Decode: scores from codes, values summed from codes, per (token, KV head) with the query
// heads that share it: each TurboQuant row is decoded once for the whole group
// (TurboQuantizer::score_rows / accumulate_rows). Positions outside kv.codes_span read their f16
// rows instead: scores against the unrotated query, values summed unrotated and added after the
// output is rotated back.
void attention_from_codes(const float* q, const LayerKVCache& kv, const CacheSide& ks, const CacheSide& vs,
                          int64_t n_tokens, int64_t pos0, int64_t n_head, float scale, int64_t window, float* out) {
  const int64_t D = kv.head_dim(), n_head_kv = kv.n_head_kv();
  const int64_t group = n_head / n_head_kv, n_items = n_tokens * n_head_kv;
  const int64_t q_floats = ks.turbo ? ks.turbo->query_floats() : D;  // per prepared query head
  const VecDotFn dot = vec_dot_kernel(GgmlType::F32);
  const int threads = attention_threads(n_tokens * n_head * (pos0 + n_tokens) * D);
#pragma omp parallel num_threads(threads)
  {
    std::vector<float> prepared(static_cast<size_t>(group * q_floats));         // [group, q_floats]
    std::vector<float> q_codes(static_cast<size_t>(D));                         // one query head / a
    std::vector<float> q_offset(static_cast<size_t>(group));                    // [group] q . m
    std::vector<float> scores(static_cast<size_t>(group * (pos0 + n_tokens)));  // [group, visible]
    std::vector<float> acc(static_cast<size_t>(group * D));                     // [group, D]
    std::vector<float> acc_f16(static_cast<size_t>(group * D));                 // [group, D] unrotated
    std::vector<float> buf(static_cast<size_t>(D));                             // one decoded head
#pragma omp for schedule(static)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t t = item / n_head_kv, g = item % n_head_kv;
      const int64_t last = pos0 + t, first = first_visible(last, window), n_vis = last - first + 1;
      const LayerKVCache::Span codes = kv.codes_span(first, last);
      const int64_t n_codes = std::max<int64_t>(0, codes.hi - codes.lo + 1);
      const float* qg = q + (t * n_head + g * group) * D;  // the group's query heads, [group, D]
      for (int64_t j = 0; j < group; ++j) {
        if (ks.turbo) {
          q_offset[static_cast<size_t>(j)] = query_for_key_codes(kv, qg + j * D, g, q_codes.data());
          ks.turbo->prepare_query(q_codes.data(), prepared.data() + j * q_floats);
        } else {
          std::copy_n(qg + j * D, D, prepared.data() + j * q_floats);
        }
      }
      if (ks.turbo) {
        if (n_codes > 0)
          ks.turbo->score_rows(prepared.data(), group, kv.k_row(codes.lo) + static_cast<size_t>(g) * ks.head_bytes,
                               kv.k_row_bytes(), n_codes, scale, scores.data() + (codes.lo - first), n_vis);
        for (int64_t j = 0; j < group; ++j)
          for (int64_t p = codes.lo; p <= codes.hi; ++p)
            scores[static_cast<size_t>(j * n_vis + p - first)] += scale * q_offset[static_cast<size_t>(j)];
        for_each_f16_position(first, last, codes, [&](int64_t p) {
          const float* kf = f16_head(kv.k_f16_row(p), g, D, buf.data());
          for (int64_t j = 0; j < group; ++j)
            scores[static_cast<size_t>(j * n_vis + p - first)] = scale * dot(D, kf, qg + j * D);
        });
      } else {
        for (int64_t p = first; p <= last; ++p) {
          const float* kf = ks.floats(kv.k_row(p), g, buf.data());
          for (int64_t j = 0; j < group; ++j)
            scores[static_cast<size_t>(j * n_vis + p - first)] = scale * dot(D, kf, prepared.data() + j * q_floats);
        }
      }
      for (int64_t j = 0; j < group; ++j) softmax(scores.data() + j * n_vis, n_vis);
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(acc_f16.begin(), acc_f16.end(), 0.0f);
      if (vs.turbo) {
        if (n_codes > 0)
          vs.turbo->accumulate_rows(acc.data(), group, scores.data() + (codes.lo - first), n_vis,
                                    kv.v_row(codes.lo) + static_cast<size_t>(g) * vs.head_bytes, kv.v_row_bytes(),
                                    n_codes);
        for_each_f16_position(first, last, codes, [&](int64_t p) {
          const float* vf = f16_head(kv.v_f16_row(p), g, D, buf.data());
          for (int64_t j = 0; j < group; ++j)
            mad(acc_f16.data() + j * D, vf, scores[static_cast<size_t>(j * n_vis + p - first)], D);
        });
      } else {
        for (int64_t p = first; p <= last; ++p) {
          const float* vf = vs.floats(kv.v_row(p), g, buf.data());
          for (int64_t j = 0; j < group; ++j)
            mad(acc.data() + j * D, vf, scores[static_cast<size_t>(j * n_vis + p - first)], D);
        }
      }
      for (int64_t j = 0; j < group; ++j) {
        float* oh = out + (t * n_head + g * group + j) * D;
        if (vs.turbo) {
          vs.turbo->unrotate(acc.data() + j * D, oh);
          for (int64_t i = 0; i < D; ++i) oh[i] += acc_f16[static_cast<size_t>(j * D + i)];
        } else {
          std::copy_n(acc.data() + j * D, D, oh);
        }
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
