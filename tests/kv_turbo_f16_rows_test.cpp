// The f16 rows a TurboQuant cache keeps beside its codes (TurboF16Rows: the first positions and,
// per query, the newest ones): which positions have them as batches and decode steps arrive and
// when a context is rewound, that attention reads exactly those from f16 and every other
// position from codes (decode and prefill alike), and that a forward pass gives the same logits
// token by token as in one batch.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/attention_turbo.h"
#include "engine/kv_cache.h"
#include "engine/ops.h"
#include "quant/float16.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "turbo_key_codes.h"

namespace optiq::engine {
namespace {

using test::logits_of;
using test::max_diff;
using test::random_values;

float f16_round(float x) { return f16_to_f32(f32_to_f16(x)); }

TEST(KVTurboF16Rows, RowsFollowTheSinkAndTheNewestPositions) {
  const int64_t n_ctx = 20, n_head_kv = 2, D = 64, W = n_head_kv * D;
  const auto k = random_values(static_cast<size_t>(n_ctx * W), 1), v = random_values(k.size(), 2);
  // No key statistics (KVTurboStore covers them): every position has its codes as it arrives.
  LayerKVCache c(n_ctx, n_head_kv, D, LayerKVTypes{KVType::TQ3, KVType::TQ4}, true, 0, TurboF16Rows{2, 4, 0});
  // Codes, the key offset and scales, and (2 + 4) f16 rows of each side.
  EXPECT_EQ(c.k_bytes() + c.v_bytes(), static_cast<size_t>(n_ctx) * (c.k_row_bytes() + c.v_row_bytes()) +
                                           2 * W * sizeof(float) + 2 * 6 * W * sizeof(uint16_t));
  c.store(0, 10, k.data(), v.data());
  // After a batch every position of it still has its row: its first query needs the 3 before.
  for (int64_t p = 0; p < 10; ++p) {
    ASSERT_NE(c.k_f16_row(p), nullptr) << p;
    ASSERT_NE(c.v_f16_row(p), nullptr) << p;
    EXPECT_EQ(f16_to_f32(c.k_f16_row(p)[5]), f16_round(k[p * W + 5])) << p;
    EXPECT_EQ(f16_to_f32(c.v_f16_row(p)[W - 1]), f16_round(v[p * W + W - 1])) << p;
  }
  // A query at 9 seeing 0..9 reads 0, 1 (sink) and 6..9 (newest) from f16, 2..5 from codes.
  EXPECT_EQ(c.codes_span(0, 9).lo, 2);
  EXPECT_EQ(c.codes_span(0, 9).hi, 5);
  // One at 4 reads everything from f16 (the sink meets the newest): an empty span.
  EXPECT_GT(c.codes_span(0, 4).lo, c.codes_span(0, 4).hi);
  // A sliding window starting at 3 moves the span's start.
  EXPECT_EQ(c.codes_span(3, 9).lo, 3);

  for (int64_t p = 10; p < 14; ++p) c.store(p, 1, k.data() + p * W, v.data() + p * W);
  // Decode steps trim the window to what the next query needs: 10..13, plus the sink.
  for (int64_t p = 0; p < 14; ++p) EXPECT_EQ(c.k_f16_row(p) != nullptr, p < 2 || p >= 10) << p;
  EXPECT_EQ(c.codes_span(0, 13).hi, 9);

  // A rewound context (the next token stored at 12 again) cuts the window there, and positions
  // the window had dropped stay on codes even when a later query would want them in f16.
  c.store(12, 1, k.data() + 12 * W, v.data() + 12 * W);
  EXPECT_EQ(c.k_f16_row(13), nullptr);
  EXPECT_NE(c.k_f16_row(12), nullptr);
  c.store(3, 1, k.data() + 3 * W, v.data() + 3 * W);
  EXPECT_NE(c.k_f16_row(3), nullptr);
  EXPECT_EQ(c.codes_span(0, 3).lo, 2);
  EXPECT_EQ(c.codes_span(0, 3).hi, 2);  // 0..2 would be f16, but 2 was dropped long ago

  // A side that is not TurboQuant keeps no rows; a cache without TurboQuant reads all as stored.
  const LayerKVCache mixed(4, 1, D, LayerKVTypes{KVType::Q8_0, KVType::TQ3}, true, 0, TurboF16Rows{1, 2});
  EXPECT_EQ(mixed.k_f16_row(0), nullptr);
  const LayerKVCache plain(4, 1, D, LayerKVTypes{KVType::Q8_0, KVType::F16});
  EXPECT_EQ(plain.codes_span(0, 3).lo, 0);
  EXPECT_EQ(plain.codes_span(0, 3).hi, 3);
  EXPECT_EQ(plain.k_bytes(), 4 * plain.k_row_bytes());
}

// Keys and values as attention reads them for a query at `last`: f16 rows outside the codes span,
// the dequantized codes inside (keys: key_from_codes). [n, n_head_kv, D]
std::vector<float> rows_seen(const LayerKVCache& c, bool values, int64_t n, int64_t first, int64_t last) {
  const int64_t D = c.head_dim(), W = c.row_width();
  const kv::TurboQuantizer* tq = values ? c.v_turbo() : c.k_turbo();
  const LayerKVCache::Span codes = c.codes_span(first, last);
  std::vector<float> out(static_cast<size_t>(n * W), 0.0f);
  for (int64_t p = first; p <= last; ++p) {
    float* o = out.data() + p * W;
    if (p >= codes.lo && p <= codes.hi && !values) {
      test::key_from_codes(c, p, o);
    } else if (p >= codes.lo && p <= codes.hi) {
      for (int64_t g = 0; g < c.n_head_kv(); ++g) tq->dequantize(c.v_row(p) + g * tq->row_bytes(), o + g * D);
    } else {
      f16_to_f32_n(values ? c.v_f16_row(p) : c.k_f16_row(p), o, static_cast<size_t>(W));
    }
  }
  return out;
}

// Decode steps (scores from codes) and prefill batches (decoded rows and sgemm) both equal f32
// attention over exactly the rows rows_seen says each query reads, with and without a sliding
// window.
TEST(KVTurboF16Rows, AttentionReadsF16RowsThereAndCodesElsewhere) {
  const int64_t n_head = 6, n_head_kv = 2, D = 64, W = n_head_kv * D, n_pos = 48;
  const float scale = 0.125f;
  auto k = random_values(static_cast<size_t>(n_pos * W), 3);
  for (size_t i = 0; i < k.size(); i += static_cast<size_t>(D)) k[i + 7] = 6.0f + k[i + 7];  // a shared component
  const auto v = random_values(k.size(), 4);
  auto q_first = random_values(static_cast<size_t>(n_pos * n_head * D), 6);
  for (size_t i = 0; i < q_first.size(); i += static_cast<size_t>(D)) q_first[i + 3] *= 5.0f;
  for (int64_t window : {0, 20})
    for (int64_t n_tokens : {1, 16}) {
      SCOPED_TRACE("window " + std::to_string(window) + " tokens " + std::to_string(n_tokens));
      const int64_t pos0 = n_pos - n_tokens;
      LayerKVCache c(n_pos, n_head_kv, D, LayerKVTypes{KVType::TQ3, KVType::TQ3}, true, 1, TurboF16Rows{1, 8, 16});
      // The first batch sets the key offset and scales.
      c.store(0, pos0, k.data(), v.data(), q_first.data(), n_head);
      c.store(pos0, n_tokens, k.data() + pos0 * W, v.data() + pos0 * W);
      const auto q = random_values(static_cast<size_t>(n_tokens * n_head * D), 5);
      std::vector<float> got(q.size()), want(q.size());
      causal_attention_turbo(q.data(), c, n_tokens, pos0, n_head, scale, window, got.data());
      for (int64_t t = 0; t < n_tokens; ++t) {
        const int64_t last = pos0 + t, first = window > 0 ? std::max<int64_t>(0, last - window + 1) : 0;
        const auto ks = rows_seen(c, false, last + 1, first, last), vs = rows_seen(c, true, last + 1, first, last);
        causal_attention(q.data() + t * n_head * D, ks.data(), vs.data(), 1, last, n_head, n_head_kv, D, scale, window,
                         want.data() + t * n_head * D);
      }
      for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], want[i], 2e-5) << i;
    }
}

TEST(KVTurboF16Rows, ForwardTokenByTokenEqualsOneBatch) {
  const Model m = test::tiny_llama({.n_vocab = 48, .n_embd = 96, .n_ff = 80, .n_head = 4, .n_head_kv = 1, .seed = 21});
  const std::vector<int32_t> tokens = {1, 5, 9, 17, 3, 22, 8, 31, 2, 11, 4, 39, 40, 7};
  KVCacheConfig config;
  config.layers = {{KVType::TQ3, KVType::TQ3}, {KVType::F16, KVType::TQ3}, {KVType::TQ4, KVType::Q8_0}};
  config.turbo_f16 = {1, 4, 4};
  const auto batch = logits_of(m, config, tokens, false), steps = logits_of(m, config, tokens, true);
  EXPECT_LT(max_diff(steps, batch), 1e-3);
  // With every position in f16 (recent >= the sequence) the cache is an f16 cache.
  config.turbo_f16 = {0, 64, 4};
  KVCacheConfig f16;
  f16.layers.assign(3, {KVType::F16, KVType::F16});
  f16.layers[2].v = KVType::Q8_0;
  EXPECT_LT(max_diff(logits_of(m, config, tokens, false), logits_of(m, f16, tokens, false)), 1e-3);
  const auto ref = logits_of(m, {}, tokens, false);
  config.turbo_f16 = {1, 4, 4};
  KVCacheConfig codes_only = config;
  codes_only.turbo_f16 = {0, 0, 4};
  EXPECT_LT(max_diff(batch, ref), max_diff(logits_of(m, codes_only, tokens, false), ref));
}

// The flags reach the cache from the CLI: the default rows and codes only give different
// perplexities on stories260K, the printed cache size counts the rows, a negative count is
// refused with exit 2, --kv-key-stats 0 changes the result, and a kv_config.json's rows apply
// unless a flag overrides them.
TEST(KVTurboF16Rows, CliFlagsSetTheRows) {
  const std::string perplexity = "perplexity " + test::stories260k().string() + " -f " +
                                 (test::fixtures_dir() / "stories.txt").string() + " -c 128 --chunks 1 -t 1 ";
  const std::string base = perplexity + "--kv-key-stats 16 --cache-type-k tq3 --cache-type-v tq3";
  const auto with_rows = test::run_optiq(base);
  const auto codes_only = test::run_optiq(base + " --kv-sink-f16 0 --kv-recent-f16 0");
  ASSERT_EQ(with_rows.exit_code, 0) << with_rows.output;
  ASSERT_EQ(codes_only.exit_code, 0) << codes_only.output;
  const auto final_line = [](const std::string& out) { return out.substr(out.find("Final estimate")); };
  EXPECT_NE(final_line(with_rows.output), final_line(codes_only.output));
  const auto bytes = [](const std::string& out) {
    const size_t end = out.find(" bytes (", out.find("KV cache: "));  // "..., 67840 bytes (0.06 MiB)"
    const size_t start = out.rfind(' ', end - 1) + 1;
    return std::stoll(out.substr(start, end - start));
  };
  // stories260K: 5 layers, 4 K/V heads of 8; 65 f16 rows of 32 values per side and layer.
  EXPECT_EQ(bytes(with_rows.output) - bytes(codes_only.output), 5 * 2 * 65 * 32 * 2);
  const auto bad = test::run_optiq(base + " --kv-recent-f16 -1");
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("--kv-recent-f16"), std::string::npos) << bad.output;
  // Without key statistics the keys are quantized as they are: another perplexity.
  const auto no_stats = test::run_optiq(perplexity + "--kv-key-stats 0 --cache-type-k tq3 --cache-type-v tq3");
  ASSERT_EQ(no_stats.exit_code, 0) << no_stats.output;
  EXPECT_NE(final_line(no_stats.output), final_line(with_rows.output));

  // A kv_config.json's rows apply unless a flag says otherwise.
  test::ScratchDir dir;
  std::string layers;
  for (int i = 0; i < 5; ++i) layers += std::string(i ? ", " : "") + R"({"k": "tq3", "v": "tq3"})";
  test::write_text(dir / "kv.json", R"({"layers": [)" + layers + R"(], "turbo_f16": {"sink": 0, "recent": 0}})");
  const std::string with_file = perplexity + "--kv-key-stats 16 --kv-config " + (dir / "kv.json").string();
  const auto file_rows = test::run_optiq(with_file);
  ASSERT_EQ(file_rows.exit_code, 0) << file_rows.output;
  EXPECT_EQ(final_line(file_rows.output), final_line(codes_only.output));
  const auto flag_over_file = test::run_optiq(with_file + " --kv-sink-f16 1 --kv-recent-f16 64");
  ASSERT_EQ(flag_over_file.exit_code, 0) << flag_over_file.output;
  EXPECT_EQ(final_line(flag_over_file.output), final_line(with_rows.output));
}

}  // namespace
}  // namespace optiq::engine
