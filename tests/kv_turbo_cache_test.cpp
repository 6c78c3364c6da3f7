// TurboQuant KV cache types in the engine: the rows a LayerKVCache stores are the TurboQuant
// module's rows, attention over them (from codes for decode, decoded for prefill) against
// attention over the same rows dequantized and against f32 attention, per-layer mixes of
// TurboQuant with other types in a forward pass, and perplexity of a real model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <vector>

#include "engine/attention_turbo.h"
#include "engine/kv_cache.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "eval/perplexity.h"
#include "model/model_source.h"
#include "model/tokenizer.h"
#include "quant/float16.h"
#include "quant/quantize.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "turbo_key_codes.h"
#include "util/error.h"

namespace optiq::engine {
namespace {

using test::logits_of;
using test::max_diff;
using test::random_values;

// These tests are about the codes: no position is also kept in f16 (kv_turbo_f16_rows_test.cpp
// covers those rows) but the first 4, which the key statistics come from.
constexpr TurboF16Rows kCodesOnly{0, 0, 4};

// Keys with a few large channels, as real keys have (outliers are what the rotation is for).
std::vector<float> keys_with_outliers(size_t n, int64_t width, uint32_t seed) {
  auto k = random_values(n, seed);
  for (size_t i = 0; i < n; i += static_cast<size_t>(width))
    for (size_t c : {3u, 17u, 40u}) k[i + c] *= 8.0f;
  return k;
}

double relative_error(const std::vector<float>& got, const std::vector<float>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return std::sqrt(num / den);
}

TEST(KVTurboTypes, NamesBitsAndRefusals) {
  EXPECT_EQ(kv_type_from_name("tq3"), KVType::TQ3);
  EXPECT_EQ(kv_type_from_name("tq3_5"), KVType::TQ3_5);
  EXPECT_EQ(kv_type_from_name("tq3_qjl"), KVType::TQ3_QJL);
  EXPECT_EQ(kv_type_name(KVType::TQ4), "tq4");
  EXPECT_NE(kv_type_names().find("tq2, tq2_5, tq3, tq3_5, tq4, tq3_qjl, tq4_qjl"), std::string::npos);
  EXPECT_TRUE(kv_type_is_turbo(KVType::TQ2));
  EXPECT_FALSE(kv_type_is_block(KVType::TQ2));
  EXPECT_FALSE(kv_type_is_turbo(KVType::Q4_0));
  EXPECT_THROW(kv_ggml_type(KVType::TQ3), std::logic_error);
  // N code bits + a 16-bit norm per head; QJL: N-1 code bits + 1 sketch bit + two f16 norms.
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KVType::TQ3, 64), 3.25);
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KVType::TQ3, 128), 3.125);
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KVType::TQ4, 256), 4.0625);
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KVType::TQ2_5, 128), 2.625);
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KVType::TQ3_QJL, 64), 3.5);
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KVType::Q4_0, 64), 4.5);
  EXPECT_DOUBLE_EQ(kv_bits_per_value(KVType::F16, 64), 16.0);
  // Values are summed from codes alone, so a QJL sketch there would be dead weight.
  EXPECT_THROW(LayerKVCache(4, 1, 64, LayerKVTypes{KVType::F16, KVType::TQ3_QJL}), InputError);
  EXPECT_NO_THROW(LayerKVCache(4, 1, 64, LayerKVTypes{KVType::TQ3_QJL, KVType::TQ3}));
  EXPECT_THROW(LayerKVCache(4, 1, 12, LayerKVTypes{KVType::TQ4, KVType::F16}), InputError);
  // Widths that are not powers of two get the dense rotation.
  EXPECT_EQ(LayerKVCache(4, 1, 24, LayerKVTypes{KVType::TQ4, KVType::F16}).k_turbo()->rotation().kind(),
            kv::RotationKind::Dense);
  EXPECT_EQ(LayerKVCache(4, 1, 64, LayerKVTypes{KVType::TQ4, KVType::F16}).k_turbo()->rotation().kind(),
            kv::RotationKind::Hadamard);
  // TurboQuant rotates on its own: llama.cpp's Hadamard rotation is for block types only.
  const LayerKVCache mixed(4, 1, 64, LayerKVTypes{KVType::TQ3, KVType::Q4_0});
  EXPECT_EQ(mixed.k_rotation(), 0);
  EXPECT_EQ(mixed.v_rotation(), 64);
}

TEST(KVTurboStore, RowsAreTheModulesRowsWithPerLayerPerSideRotations) {
  const int64_t n_ctx = 5, n_head_kv = 2, D = 64, W = n_head_kv * D, layer = 7;
  const auto k = keys_with_outliers(static_cast<size_t>(n_ctx * W), D, 1);
  const auto v = random_values(k.size(), 2, 0.5f);
  for (auto [kt, vt] : {std::pair{KVType::TQ3, KVType::TQ4}, std::pair{KVType::TQ4_QJL, KVType::TQ2_5}}) {
    SCOPED_TRACE(std::string(kv_type_name(kt)) + "/" + std::string(kv_type_name(vt)));
    // No key statistics (KeyStatisticsComeFromTheFirstPositions covers them): the keys as given.
    LayerKVCache c(n_ctx, n_head_kv, D, LayerKVTypes{kt, vt}, true, layer, TurboF16Rows{0, 0, 0});
    const kv::TurboQuantizer kq(kv_turbo_format(kt, D), kv::RotationKind::Hadamard, turbo_rotation_seed(layer, false));
    const kv::TurboQuantizer vq(kv_turbo_format(vt, D), kv::RotationKind::Hadamard, turbo_rotation_seed(layer, true));
    EXPECT_EQ(c.k_row_bytes(), n_head_kv * kq.row_bytes());
    // Plus the key offset and scales, two floats per K value of a position.
    EXPECT_EQ(c.k_bytes() + c.v_bytes(),
              static_cast<size_t>(n_ctx * n_head_kv) * (kq.row_bytes() + vq.row_bytes()) + 2 * W * sizeof(float));
    c.store(0, 2, k.data(), v.data());
    c.store(2, 1, k.data() + 2 * W, v.data() + 2 * W);
    c.store(3, 2, k.data() + 3 * W, v.data() + 3 * W);
    std::vector<uint8_t> row(std::max(kq.row_bytes(), vq.row_bytes()));
    std::vector<float> got(D), want(D);
    for (int64_t p = 0; p < n_ctx; ++p)
      for (int64_t g = 0; g < n_head_kv; ++g) {
        const float* kx = k.data() + p * W + g * D;
        kq.quantize(kx, row.data());
        const uint8_t* stored = c.k_row(p) + g * kq.row_bytes();
        ASSERT_EQ(0, std::memcmp(row.data(), stored, kq.row_bytes())) << "K position " << p << " head " << g;
        c.k_turbo()->dequantize(stored, got.data());
        kq.dequantize(row.data(), want.data());
        EXPECT_EQ(got, want);
        vq.quantize(v.data() + p * W + g * D, row.data());
        ASSERT_EQ(0, std::memcmp(row.data(), c.v_row(p) + g * vq.row_bytes(), vq.row_bytes()))
            << "V position " << p << " head " << g;
      }
  }
  // Another layer, or the values of the same layer, rotate differently: the same vector gets
  // other codes.
  const LayerKVCache a(1, 1, D, LayerKVTypes{KVType::TQ4, KVType::TQ4}, true, 0);
  const LayerKVCache b(1, 1, D, LayerKVTypes{KVType::TQ4, KVType::TQ4}, true, 1);
  std::vector<uint8_t> ra(a.k_row_bytes()), rb(ra.size()), rv(ra.size());
  a.k_turbo()->quantize(k.data(), ra.data());
  b.k_turbo()->quantize(k.data(), rb.data());
  a.v_turbo()->quantize(k.data(), rv.data());
  EXPECT_NE(ra, rb);
  EXPECT_NE(ra, rv);
}

// The grouped kernels equal score()/accumulate() row by row, for uniform and split formats,
// with QJL, and for groups larger than the kernels' 4 queries.
TEST(KVTurboKernels, RowsAtOnceEqualRowByRow) {
  const int64_t D = 64, n = 37;
  const size_t stride = 100;  // bytes between rows, as inside a cache row of several heads
  for (auto [bits, qjl] : {std::pair{4.0, false}, std::pair{3.0, false}, std::pair{3.5, false}, std::pair{2.5, false},
                           std::pair{2.0, false}, std::pair{3.0, true}}) {
    SCOPED_TRACE(std::to_string(bits) + (qjl ? " qjl" : ""));
    const kv::TurboQuantizer tq(kv::turbo_format(D, bits, qjl), kv::RotationKind::Hadamard, 9);
    const auto x = keys_with_outliers(static_cast<size_t>(n * D), D, 11);
    std::vector<uint8_t> rows(n * stride);
    for (int64_t p = 0; p < n; ++p) tq.quantize(x.data() + p * D, rows.data() + p * stride);
    for (int64_t n_q : {1, 3, 6}) {
      const auto q = random_values(static_cast<size_t>(n_q * D), 12);
      std::vector<float> prepared(static_cast<size_t>(n_q * tq.query_floats()));
      for (int64_t j = 0; j < n_q; ++j) tq.prepare_query(q.data() + j * D, prepared.data() + j * tq.query_floats());
      std::vector<float> scores(static_cast<size_t>(n_q * n));
      tq.score_rows(prepared.data(), n_q, rows.data(), stride, n, 0.5f, scores.data(), n);
      for (int64_t j = 0; j < n_q; ++j)
        for (int64_t p = 0; p < n; ++p)
          ASSERT_NEAR(scores[j * n + p], 0.5f * tq.score(prepared.data() + j * tq.query_floats(), rows.data() + p * stride),
                      1e-4)
              << j << " " << p;
      if (qjl) continue;
      const auto w = random_values(scores.size(), 13);
      std::vector<float> got(static_cast<size_t>(n_q * D), 1.0f), want = got;
      tq.accumulate_rows(got.data(), n_q, w.data(), n, rows.data(), stride, n);
      for (int64_t j = 0; j < n_q; ++j)
        for (int64_t p = 0; p < n; ++p) tq.accumulate(want.data() + j * D, w[j * n + p], rows.data() + p * stride);
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 1e-4) << i;
    }
  }
}

// The key offset and scales come from the first key_stats positions whatever the batches: a
// cache filled token by token, one filled in one batch and one in two batches hold the same
// statistics and the same key codes; until the statistics are set, positions are read from f16.
TEST(KVTurboStore, KeyStatisticsComeFromTheFirstPositions) {
  const int64_t S = 16, n_ctx = 24, n_head = 4, n_head_kv = 2, D = 64, W = n_head_kv * D;
  auto k = keys_with_outliers(static_cast<size_t>(n_ctx * W), D, 3);
  for (size_t i = 0; i < k.size(); i += static_cast<size_t>(D)) k[i + 5] += 20.0f;  // a shared component
  const auto v = random_values(k.size(), 4);
  auto q = random_values(static_cast<size_t>(n_ctx * n_head * D), 5);
  for (size_t i = 0; i < q.size(); i += static_cast<size_t>(D)) q[i + 9] *= 10.0f;  // queries weigh channel 9
  const TurboF16Rows rows{0, 0, S};
  const LayerKVTypes types{KVType::TQ3, KVType::TQ3};
  const auto at = [&](const std::vector<float>& x, int64_t p, int64_t width) { return x.data() + p * width; };

  LayerKVCache steps(n_ctx, n_head_kv, D, types, true, 2, rows), batch = steps, two = steps;
  for (int64_t p = 0; p < n_ctx; ++p) {
    steps.store(p, 1, at(k, p, W), at(v, p, W), at(q, p, n_head * D), n_head);
    EXPECT_EQ(steps.key_stats_pending(), p + 1 < S) << p;
    const LayerKVCache::Span span = steps.codes_span(0, p);
    if (p < S) {
      EXPECT_GT(span.lo, span.hi) << p;  // all from f16
      EXPECT_EQ(f16_to_f32(steps.k_f16_row(p)[7]), f16_to_f32(f32_to_f16(k[p * W + 7]))) << p;
    } else {
      EXPECT_EQ(span.lo, 0);
      EXPECT_EQ(span.hi, p);
    }
  }
  batch.store(0, n_ctx, k.data(), v.data(), q.data(), n_head);
  two.store(0, 10, k.data(), v.data(), q.data(), n_head);
  EXPECT_TRUE(two.key_stats_pending());
  two.store(10, n_ctx - 10, at(k, 10, W), at(v, 10, W), at(q, 10, n_head * D), n_head);
  for (const LayerKVCache* c : {&batch, &two}) {
    EXPECT_EQ(c->k_offset(), steps.k_offset());
    EXPECT_EQ(c->k_scale(), steps.k_scale());
    for (int64_t p = 0; p < n_ctx; ++p) EXPECT_EQ(0, std::memcmp(c->k_row(p), steps.k_row(p), c->k_row_bytes())) << p;
  }

  // m: the mean of the first S keys (as held, in f16); a: (sum q^2 / sum (k - m)^2)^(1/8) per
  // channel, scaled to geometric mean 1 per head.
  const auto held = [&](int64_t p, int64_t i) { return f16_to_f32(f32_to_f16(k[p * W + i])); };
  for (int64_t g = 0; g < n_head_kv; ++g) {
    std::vector<double> want_log(static_cast<size_t>(D));
    double mean_log = 0, got_log = 0;
    for (int64_t i = 0; i < D; ++i) {
      const int64_t c = g * D + i;
      double m = 0, kk = 0, qq = 0;
      for (int64_t p = 0; p < S; ++p) m += held(p, c) / S;
      for (int64_t p = 0; p < S; ++p) {
        kk += (held(p, c) - m) * (held(p, c) - m);
        for (int64_t j = 0; j < n_head / n_head_kv; ++j) qq += std::pow(q[(p * n_head + g * 2 + j) * D + i], 2);
      }
      EXPECT_NEAR(steps.k_offset()[static_cast<size_t>(c)], m, 1e-4) << c;
      want_log[static_cast<size_t>(i)] = std::log(qq / kk) / 8;
      mean_log += want_log[static_cast<size_t>(i)] / D;
      got_log += std::log(steps.k_scale()[static_cast<size_t>(c)]) / D;
    }
    EXPECT_NEAR(got_log, 0.0, 1e-5);
    for (int64_t i = 0; i < D; ++i)
      EXPECT_NEAR(std::log(steps.k_scale()[static_cast<size_t>(g * D + i)]), want_log[static_cast<size_t>(i)] - mean_log, 1e-4);
    EXPECT_GT(steps.k_scale()[static_cast<size_t>(g * D + 9)], 1.2f);
  }
  // The codes are those of a * (k - m): from the held f16 keys below S, from the keys after.
  std::vector<float> x(static_cast<size_t>(D));
  std::vector<uint8_t> row(steps.k_turbo()->row_bytes());
  for (int64_t p = 0; p < n_ctx; ++p)
    for (int64_t g = 0; g < n_head_kv; ++g) {
      for (int64_t i = 0; i < D; ++i) {
        const auto c = static_cast<size_t>(g * D + i);
        const float key = p < S ? held(p, static_cast<int64_t>(c)) : k[static_cast<size_t>(p * W) + c];
        x[static_cast<size_t>(i)] = (key - steps.k_offset()[c]) * steps.k_scale()[c];
      }
      steps.k_turbo()->quantize(x.data(), row.data());
      EXPECT_EQ(0, std::memcmp(row.data(), steps.k_row(p) + g * row.size(), row.size())) << p << " " << g;
    }

  // Without queries the scales stay 1; without key_stats there is no offset either.
  LayerKVCache no_q(n_ctx, n_head_kv, D, types, true, 2, rows);
  no_q.store(0, n_ctx, k.data(), v.data());
  for (float a : no_q.k_scale()) EXPECT_EQ(a, 1.0f);
  EXPECT_NE(no_q.k_offset(), std::vector<float>(static_cast<size_t>(W), 0.0f));
  LayerKVCache none(n_ctx, n_head_kv, D, types, true, 2, TurboF16Rows{0, 0, 0});
  none.store(0, n_ctx, k.data(), v.data(), q.data(), n_head);
  EXPECT_EQ(none.k_offset(), std::vector<float>(static_cast<size_t>(W), 0.0f));
  EXPECT_FALSE(none.key_stats_pending());
}

// Every cached row read back as floats in the original space (TurboQuant keys: key_from_codes).
std::vector<float> dequantized(const LayerKVCache& c, bool values, int64_t n) {
  const int64_t D = c.head_dim(), W = c.row_width();
  const KVType type = values ? c.v_type() : c.k_type();
  const kv::TurboQuantizer* tq = values ? c.v_turbo() : c.k_turbo();
  std::vector<float> out(static_cast<size_t>(n * W));
  for (int64_t p = 0; p < n; ++p) {
    const uint8_t* row = values ? c.v_row(p) : c.k_row(p);
    float* o = out.data() + p * W;
    if (tq && !values)
      test::key_from_codes(c, p, o);
    else if (tq)
      for (int64_t g = 0; g < c.n_head_kv(); ++g) tq->dequantize(row + g * tq->row_bytes(), o + g * D);
    else if (type == KVType::F32) std::memcpy(o, row, W * sizeof(float));
    else if (type == KVType::F16) f16_to_f32_n(reinterpret_cast<const uint16_t*>(row), o, static_cast<size_t>(W));
    else dequantize_row(kv_ggml_type(type), row, o, W);
  }
  return out;
}

// Attention over a TurboQuant cache is attention over its dequantized rows (the rotations
// cancel), for decode steps (from codes) and prefill batches (decoded once), and stays near
// f32 attention on the original keys and values.
TEST(KVTurboAttention, EqualsAttentionOverDequantizedRowsAndIsNearF32) {
  const int64_t n_head = 8, n_head_kv = 2, D = 64, W = n_head_kv * D, n_pos = 40;
  const float scale = 0.125f;
  const auto k = keys_with_outliers(static_cast<size_t>(n_pos * W), D, 5);
  const auto v = random_values(k.size(), 6);
  auto q_all = random_values(static_cast<size_t>(n_pos * n_head * D), 8);
  for (size_t i = 0; i < q_all.size(); i += static_cast<size_t>(D)) q_all[i + 17] *= 6.0f;
  struct Case {
    KVType k, v;
    double bound;  // relative error against f32 attention
  };
  // Largest observed over windows and batch sizes: tq4 0.18, tq3 0.35, tq3_qjl 0.73 (2-bit codes:
  // unbiased, but noisier than 3-bit codes), tq3|q8_0 0.33, f16|tq4 0.097, tq2 0.54.
  for (const Case& cs : {Case{KVType::TQ4, KVType::TQ4, 0.25}, Case{KVType::TQ3, KVType::TQ3, 0.45},
                         Case{KVType::TQ3_QJL, KVType::TQ3, 0.9}, Case{KVType::TQ3, KVType::Q8_0, 0.45},
                         Case{KVType::F16, KVType::TQ4, 0.13}, Case{KVType::TQ2, KVType::TQ2, 0.7}})
    for (int64_t window : {0, 9})
      for (int64_t n_tokens : {1, 3, 12}) {
        SCOPED_TRACE(std::string(kv_type_name(cs.k)) + "/" + std::string(kv_type_name(cs.v)) + " window " +
                     std::to_string(window) + " tokens " + std::to_string(n_tokens));
        LayerKVCache c(n_pos, n_head_kv, D, LayerKVTypes{cs.k, cs.v}, true, 3, kCodesOnly);
        c.store(0, n_pos, k.data(), v.data(), q_all.data(), n_head);  // the queries set the key scales
        const int64_t pos0 = n_pos - n_tokens;
        auto q = random_values(static_cast<size_t>(n_tokens * n_head * D), 7);
        std::vector<float> got(q.size()), want(q.size()), exact(q.size());
        causal_attention_turbo(q.data(), c, n_tokens, pos0, n_head, scale, window, got.data());
        const auto kd = dequantized(c, false, n_pos), vd = dequantized(c, true, n_pos);
        causal_attention(q.data(), kd.data(), vd.data(), n_tokens, pos0, n_head, n_head_kv, D, scale, window,
                         want.data());
        for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 2e-5) << i;
        causal_attention(q.data(), k.data(), v.data(), n_tokens, pos0, n_head, n_head_kv, D, scale, window,
                         exact.data());
        const double err = relative_error(got, exact);
        EXPECT_LT(err, cs.bound);
        EXPECT_GT(err, 1e-3);  // it really quantizes
      }
}

TEST(KVTurboForward, MixedPerLayerTypesStayCloseToF32AndDecodeEqualsPrefill) {
  const Model m = test::tiny_llama({.n_vocab = 48, .n_embd = 96, .n_ff = 80, .n_head = 4, .n_head_kv = 1, .seed = 20});
  const std::vector<int32_t> tokens = {1, 5, 9, 17, 3, 22, 8, 31, 2, 11, 4, 39, 40, 7};
  const auto ref = logits_of(m, {}, tokens, false);
  KVCacheConfig mixed;
  mixed.layers = {{KVType::TQ4, KVType::Q8_0}, {KVType::F16, KVType::TQ3}, {KVType::TQ4_QJL, KVType::TQ4}};
  mixed.turbo_f16 = kCodesOnly;
  const KVCache cache = make_kv_cache(m, 32, mixed);
  // Bytes per position: tq4 34 (32 code bytes + norm), q8_0 68, f16 128, tq3 26, tq4_qjl
  // 24 + 8 + 2 + 2 = 36; and a 64-float key offset and scales in each layer with TurboQuant keys.
  EXPECT_EQ(cache.bytes(), 32u * (34 + 68 + 128 + 26 + 36 + 34) + 2 * 2 * 64 * sizeof(float));
  EXPECT_EQ(cache.layers[2].k_turbo()->format().qjl, true);

  const auto batch = logits_of(m, mixed, tokens, false);
  const auto steps = logits_of(m, mixed, tokens, true);
  EXPECT_GT(max_diff(batch, ref), 1e-3);  // the cache really quantizes
  EXPECT_LT(max_diff(batch, ref), 1.5);   // observed 0.77
  // Prefill decodes the rows to floats and uses sgemm; decode reads codes: the same numbers up
  // to summation order, and the same keys (each position is quantized once, as it arrives).
  EXPECT_LT(max_diff(steps, batch), 1e-3);

  // Uniform TQ4 is closer to F32 than uniform TQ2.
  KVCacheConfig tq4, tq2;
  tq4.layers.assign(3, {KVType::TQ4, KVType::TQ4});
  tq2.layers.assign(3, {KVType::TQ2, KVType::TQ2});
  tq4.turbo_f16 = tq2.turbo_f16 = kCodesOnly;
  const double d4 = max_diff(logits_of(m, tq4, tokens, true), ref), d2 = max_diff(logits_of(m, tq2, tokens, true), ref);
  EXPECT_LT(d4, d2);
}

// stories260K's heads are 8 wide, so TQ4 costs 6 bits per value there (the f16 norm is 2 of
// them), and its attention is very peaked (logits up to about 230, where a 1% error in a score
// moves it by 2): a worst case for any quantized cache. Each step down in bits must cost
// perplexity, and TQ4 must stay within a bound of the F32 cache's (SmolLM2, head 64: +2.3%,
// docs/results.md).
TEST(KVTurboPerplexity, Stories260kOrdersByBitsAndTq4StaysWithinBound) {
  const Model model = load_model(open_model_source(test::stories260k()));
  const Tokenizer tok = load_tokenizer(test::stories260k());
  const auto text = eval::read_perplexity_text(
      (test::fixtures_dir() / "stories.txt").string());
  const auto tokens = tok.encode(text, true, false);
  eval::ChunkSetup setup;
  setup.n_ctx = 128;
  setup.bos = tok.add_bos ? tok.bos : -1;
  const int64_t n_chunk = std::min<int64_t>(4, static_cast<int64_t>(tokens.size()) / setup.n_ctx);
  ASSERT_GE(n_chunk, 2);
  std::FILE* sink = std::tmpfile();  // the running values compute_perplexity prints
  ASSERT_NE(sink, nullptr);
  // Key statistics from the first 32 positions of each 128-token chunk (which read f16).
  auto ppl_with = [&](KVType k, KVType v, TurboF16Rows rows = TurboF16Rows{0, 0, 32}) {
    setup.kv.layers.assign(static_cast<size_t>(model.hp.n_layer), {k, v});
    setup.kv.turbo_f16 = rows;
    return eval::compute_perplexity(model, tokens, n_chunk, setup, nullptr, sink, nullptr).final.ppl;
  };
  const double f32 = ppl_with(KVType::F32, KVType::F32), f16 = ppl_with(KVType::F16, KVType::F16);
  const double tq4 = ppl_with(KVType::TQ4, KVType::TQ4), tq3 = ppl_with(KVType::TQ3, KVType::TQ3);
  const double tq2 = ppl_with(KVType::TQ2, KVType::TQ2), tq4_k = ppl_with(KVType::TQ4, KVType::F32);
  const double tq3_rows = ppl_with(KVType::TQ3, KVType::TQ3, TurboF16Rows{.key_stats = 32});
  std::fclose(sink);
  SCOPED_TRACE("f32 " + std::to_string(f32) + " f16 " + std::to_string(f16) + " tq4 " + std::to_string(tq4) +
               " tq3 " + std::to_string(tq3) + " tq2 " + std::to_string(tq2) + " tq4 K only " + std::to_string(tq4_k) +
               " tq3 with the default f16 rows " + std::to_string(tq3_rows));
  EXPECT_LT(std::abs(f16 / f32 - 1.0), 0.01);
  EXPECT_LT(f32, tq4);
  EXPECT_LT(tq4, tq3);
  EXPECT_LT(tq3, tq2);
  // Observed: f32 3.85, tq4 4.06, tq3 6.30, tq2 19.9, tq4 K alone 4.09, tq3 with the rows 3.87;
  // without any key statistics tq4 was 7.97, with the first batch's mean key alone 4.53.
  EXPECT_LT(tq4 / f32, 1.3);
  // The f16 first position and 64 newest (half of each 128-token chunk's scored span here)
  // take most of tq3's loss back.
  EXPECT_LT(tq3_rows - f32, 0.5 * (tq3 - f32));
}

TEST(KVTurboCli, EvalAndPerplexityTakeTheTurboTypes) {
  const std::string model = test::stories260k().string();
  const std::string text = (test::fixtures_dir() / "stories.txt").string();
  auto r = test::run_optiq("eval " + model + " --task ppl --data " + text + " -c 64 --n-samples 2 -t 1 --cache-type-k tq4 --cache-type-v tq3");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("KV cache: K tq4, V tq3"), std::string::npos) << r.output;
  r = test::run_optiq("perplexity " + model + " -f " + text + " -c 64 --chunks 1 -t 1 --cache-type-v tq4_qjl");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("tq4_qjl is for keys"), std::string::npos) << r.output;
  r = test::run_optiq("eval " + model + " --task ppl --data " + text + " -c 64 -t 1 --cache-type-k tq5");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("\"tq5\" is not a KV cache type"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace optiq::engine
