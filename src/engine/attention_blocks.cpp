#include "engine/attention_blocks.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "engine/ops.h"
#include "quant/dot.h"
#include "quant/float16.h"
#include "quant/quantize.h"

namespace optiq::engine {
namespace {

// One stored head row [head_dim] of `type` as floats; returns x itself for F32 storage.
const float* to_float(GgmlType type, const uint8_t* row, float* buf, int64_t n) {
  switch (type) {
    case GgmlType::F32: return reinterpret_cast<const float*>(row);
    case GgmlType::F16: f16_to_f32_n(reinterpret_cast<const uint16_t*>(row), buf, static_cast<size_t>(n)); return buf;
    default: dequantize_row(type, row, buf, n); return buf;
  }
}

}  // namespace

void causal_attention_cached(const float* q, const LayerKVCache& kv, int64_t n_tokens, int64_t pos0,
                             int64_t n_head, float scale, int64_t window, float* out) {
  const int64_t D = kv.head_dim(), n_head_kv = kv.n_head_kv();
  const GgmlType k_type = kv_ggml_type(kv.k_type()), v_type = kv_ggml_type(kv.v_type());
  const GgmlType q_type = *vec_dot_type(k_type);
  const VecDotFn dot = vec_dot_kernel(k_type);
  const auto d = static_cast<uint64_t>(D);
  const size_t k_head_bytes = *ggml_row_bytes(k_type, d), v_head_bytes = *ggml_row_bytes(v_type, d);
  const size_t q_bytes = *ggml_row_bytes(q_type, d);
  const int threads = attention_threads(n_tokens * n_head * (pos0 + n_tokens) * D);
  // One item is a token and a K/V head with the query heads that share it, so each stored value
  // row is dequantized once per token for the whole group.
  const int64_t group = n_head / n_head_kv, n_items = n_tokens * n_head_kv;
  const size_t q_words = (q_bytes + 7) / 8;  // one query head as q_type, in 8-byte words
#pragma omp parallel num_threads(threads)
  {
    std::vector<uint64_t> q_conv(static_cast<size_t>(group) * q_words);
    std::vector<float> acc(static_cast<size_t>(group * D)), v_buf(static_cast<size_t>(D));
    std::vector<float> sum(static_cast<size_t>(group)), max(static_cast<size_t>(group));
#pragma omp for schedule(static)
    for (int64_t item = 0; item < n_items; ++item) {
      const int64_t t = item / n_head_kv, g = item % n_head_kv;
      const int64_t last = pos0 + t, first = window > 0 ? std::max<int64_t>(0, last - window + 1) : 0;
      for (int64_t j = 0; j < group; ++j)
        quantize_activation(q_type, q + (t * n_head + g * group + j) * D, q_conv.data() + j * q_words, D);
      std::fill(acc.begin(), acc.end(), 0.0f);
      std::fill(sum.begin(), sum.end(), 0.0f);
      std::fill(max.begin(), max.end(), -INFINITY);
      for (int64_t p = first; p <= last; ++p) {
        const uint8_t* k_head = kv.k_row(p) + static_cast<size_t>(g) * k_head_bytes;
        const float* vp = to_float(v_type, kv.v_row(p) + static_cast<size_t>(g) * v_head_bytes, v_buf.data(), D);
        for (int64_t j = 0; j < group; ++j) {
          const float s = dot(D, k_head, q_conv.data() + j * q_words) * scale;
          float* a = acc.data() + j * D;
          float rescale = 1.0f, weight = 1.0f;  // of the sum so far, of this position
          if (s > max[j]) {
            rescale = std::exp(max[j] - s);
            max[j] = s;
            for (int64_t i = 0; i < D; ++i) a[i] *= rescale;
          } else {
            weight = std::exp(s - max[j]);
          }
          mad(a, vp, weight, D);
          sum[j] = sum[j] * rescale + weight;
        }
      }
      for (int64_t j = 0; j < group; ++j) {
        const float inv = sum[j] == 0.0f ? 0.0f : 1.0f / sum[j];
        float* oh = out + (t * n_head + g * group + j) * D;
        for (int64_t i = 0; i < D; ++i) oh[i] = acc[static_cast<size_t>(j * D + i)] * inv;
      }
    }
  }
}

}  // namespace optiq::engine
