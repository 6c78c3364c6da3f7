// The engine's building blocks against values worked out by hand, and the forward pass's
// self-consistency (batched prefill vs token-by-token decode) on stories260K.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include "engine/model.h"
#include "engine/ops.h"
#include "engine/weight.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "quant/float16.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq::engine {
namespace {

TEST(EngineOps, RmsNormOfKnownVector) {
  // x = (3, 4): mean of squares (9 + 16) / 2 = 12.5, so x / sqrt(12.5) = (0.848528, 1.131371);
  // weights (1, 2) scale the second element.
  const float x[2] = {3, 4}, w[2] = {1, 2};
  float out[2];
  rms_norm(x, w, 1, 2, 0.0f, out);
  EXPECT_NEAR(out[0], 3 / std::sqrt(12.5), 1e-6);
  EXPECT_NEAR(out[1], 2 * 4 / std::sqrt(12.5), 1e-6);
  // eps enters under the root: (1, 1) with eps 3 -> 1 / sqrt(1 + 3) = 0.5.
  const float ones[2] = {1, 1}, unit[2] = {1, 1};
  rms_norm(ones, unit, 1, 2, 3.0f, out);
  EXPECT_FLOAT_EQ(out[0], 0.5f);
  EXPECT_FLOAT_EQ(out[1], 0.5f);
  // Each token (row) is normalized on its own, in place.
  float two[4] = {2, 2, -5, 5};
  rms_norm(two, unit, 2, 2, 0.0f, two);
  EXPECT_FLOAT_EQ(two[0], 1.0f);
  EXPECT_FLOAT_EQ(two[2], -1.0f);
  EXPECT_FLOAT_EQ(two[3], 1.0f);
}

TEST(EngineOps, RopeRotatesUnitVectorByKnownAngle) {
  // head_dim 2: one pair, frequency 1, so position 3 rotates (1, 0) by 3 radians.
  float x[2] = {1, 0};
  rope(RopeType::Norm, x, 1, 2, 2, 3, 10000.0f, 1.0f, nullptr);
  EXPECT_NEAR(x[0], std::cos(3.0), 1e-6);
  EXPECT_NEAR(x[1], std::sin(3.0), 1e-6);
  // head_dim 4, base 10000: the second pair turns at 10000^(-2/4) = 0.01 rad per position, so
  // at position 100 (0, 1) in that pair turns by 1 rad to (-sin 1, cos 1); the first pair at
  // 1 rad per position turns (1, 0) by 100 rad.
  float y[4] = {1, 0, 0, 1};
  rope(RopeType::Norm, y, 1, 4, 4, 100, 10000.0f, 1.0f, nullptr);
  EXPECT_NEAR(y[0], std::cos(100.0), 1e-4);
  EXPECT_NEAR(y[1], std::sin(100.0), 1e-4);
  EXPECT_NEAR(y[2], -std::sin(1.0), 1e-5);
  EXPECT_NEAR(y[3], std::cos(1.0), 1e-5);
  // A frequency factor divides the angle; dimensions past n_rot pass through; position 0 is
  // the identity; every head gets the same rotation.
  float z[8] = {0, 1, 7, 8, 0, 1, 7, 8};
  const float factors[1] = {2.0f};
  rope(RopeType::Norm, z, 2, 4, 2, 1, 10000.0f, 1.0f, factors);  // angle 1 / 2
  for (int h = 0; h < 2; ++h) {
    EXPECT_NEAR(z[h * 4 + 0], -std::sin(0.5), 1e-6);
    EXPECT_NEAR(z[h * 4 + 1], std::cos(0.5), 1e-6);
    EXPECT_EQ(z[h * 4 + 2], 7.0f);
    EXPECT_EQ(z[h * 4 + 3], 8.0f);
  }
  float w[2] = {0.3f, -0.4f};
  rope(RopeType::Norm, w, 1, 2, 2, 0, 10000.0f, 1.0f, nullptr);
  EXPECT_EQ(w[0], 0.3f);
  EXPECT_EQ(w[1], -0.4f);
  // Linear scaling (freq_scale 0.5) halves the angle.
  float s[2] = {1, 0};
  rope(RopeType::Norm, s, 1, 2, 2, 2, 10000.0f, 0.5f, nullptr);
  EXPECT_NEAR(s[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(s[1], std::sin(1.0), 1e-6);
}

TEST(EngineOps, CausalAttentionMasksTheFuture) {
  // One head of width 1, three tokens in one batch. Scores q*k are 0 for keys 0 and 1, so a
  // token sees the plain average of the values it may see; key 2 scores 100 and would take all
  // the weight if the mask let tokens 0 and 1 see it.
  const float q[3] = {1, 1, 1}, k[3] = {0, 0, 100}, v[3] = {1, 3, 8};
  float out[3];
  causal_attention(q, k, v, 3, 0, 1, 1, 1, 1.0f, 0, out);
  EXPECT_FLOAT_EQ(out[0], 1.0f);        // sees v0 only
  EXPECT_FLOAT_EQ(out[1], 2.0f);        // (1 + 3) / 2
  EXPECT_NEAR(out[2], 8.0f, 1e-6);      // softmax(0, 0, 100) is all on v2
  // Decoding one token at position 1 (pos0 = 1) sees positions 0 and 1 of the cache.
  const float q1[1] = {1};
  causal_attention(q1, k, v, 1, 1, 1, 1, 1, 1.0f, 0, out);
  EXPECT_FLOAT_EQ(out[0], 2.0f);
  // The scale multiplies the scores: k = (0, ln 3) with scale 1 gives weights (1/4, 3/4).
  const float k2[2] = {0, static_cast<float>(std::log(3.0))}, v2[2] = {0, 4};
  causal_attention(q1, k2, v2, 1, 1, 1, 1, 1, 1.0f, 0, out);
  EXPECT_NEAR(out[0], 3.0f, 1e-6);
}

TEST(EngineOps, GroupedQueryHeadMapping) {
  // 8 query heads over 4 key/value heads: contiguous pairs, as ggml broadcasts.
  const int64_t want[8] = {0, 0, 1, 1, 2, 2, 3, 3};
  for (int64_t h = 0; h < 8; ++h) EXPECT_EQ(kv_head_of(h, 8, 4), want[h]) << h;
  for (int64_t h = 0; h < 8; ++h) EXPECT_EQ(kv_head_of(h, 8, 1), 0) << h;  // multi-query
  for (int64_t h = 0; h < 4; ++h) EXPECT_EQ(kv_head_of(h, 4, 4), h) << h;  // multi-head
  // In attention: 4 query heads, 2 kv heads of width 2, one position. The softmax over one
  // position is 1, so query head h returns the value of kv head h / 2.
  const float q[8] = {1, 0, 0, 1, 1, 1, -1, 2};
  const float k[4] = {5, 5, 6, 6};
  const float v[4] = {10, 11, 20, 21};  // kv head 0: (10, 11), kv head 1: (20, 21)
  float out[8];
  causal_attention(q, k, v, 1, 0, 4, 2, 2, 0.5f, 0, out);
  const float expect[8] = {10, 11, 10, 11, 20, 21, 20, 21};
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(out[i], expect[i]) << i;
}

TEST(EngineOps, SoftmaxLogSoftmaxArgmaxSwiglu) {
  float p[2] = {0, static_cast<float>(std::log(3.0))};
  float lp[2];
  log_softmax(p, 2, lp);
  EXPECT_NEAR(lp[0], std::log(0.25), 1e-6);
  EXPECT_NEAR(lp[1], std::log(0.75), 1e-6);
  softmax(p, 2);
  EXPECT_NEAR(p[0], 0.25, 1e-6);
  EXPECT_NEAR(p[1], 0.75, 1e-6);
  // Large logits do not overflow (max subtracted).
  const float big[2] = {1000, 1000};
  log_softmax(big, 2, lp);
  EXPECT_NEAR(lp[0], -std::numbers::ln2, 1e-6);
  const float ties[4] = {1, 5, 5, 2};
  EXPECT_EQ(argmax(ties, 4), 1);  // lowest index wins a tie
  float gate[2] = {0, 1};
  const float up[2] = {3, 2};
  swiglu(gate, up, 2);
  EXPECT_FLOAT_EQ(gate[0], 0.0f);
  EXPECT_NEAR(gate[1], 2.0 / (1.0 + std::exp(-1.0)), 1e-6);
}

TEST(EngineOps, RopeNeoxRotatesSplitHalves) {
  // NEOX pairs dimension i with i + n_rot/2. head_dim 4, position 1, base 10000: pair 0 is
  // (x0, x2) at angle 1, pair 1 is (x1, x3) at angle 10000^(-2/4) = 0.01.
  float x[4] = {1, 1, 0, 0};
  rope(RopeType::Neox, x, 1, 4, 4, 1, 10000.0f, 1.0f, nullptr);
  EXPECT_NEAR(x[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(x[2], std::sin(1.0), 1e-6);
  EXPECT_NEAR(x[1], std::cos(0.01), 1e-6);
  EXPECT_NEAR(x[3], std::sin(0.01), 1e-6);
}

TEST(EngineOps, GegluIsTanhGeluTimesUpAtF16Precision) {
  auto gelu = [](double v) { return 0.5 * v * (1 + std::tanh(0.7978845608028654 * v * (1 + 0.044715 * v * v))); };
  float gate[5] = {1.0f, -0.5f, 3.3f, -12.0f, 12.0f};
  const float up[5] = {2, 1, 1, 5, 0.5f};
  geglu(gate, up, 5);
  EXPECT_NEAR(gate[0], 2 * gelu(1.0), 2e-3);
  EXPECT_NEAR(gate[1], gelu(-0.5), 1e-3);
  EXPECT_NEAR(gate[2], gelu(3.3), 4e-3);
  EXPECT_FLOAT_EQ(gate[3], 0.0f);  // below -10: 0
  EXPECT_FLOAT_EQ(gate[4], 6.0f);  // above 10: the identity
  // The result is an f16 value times `up` (the table ggml looks gelu up in).
  float one[1] = {0.3f};
  const float unit[1] = {1};
  geglu(one, unit, 1);
  EXPECT_EQ(f16_to_f32(f32_to_f16(one[0])), one[0]);
}

TEST(EngineOps, SlidingWindowHidesOldPositions) {
  // Equal scores (k = 0), so each visible position gets the same weight. Values 100, 10, 20:
  // position 2 sees all three without a window (mean 43.33) and positions 1..2 with window 2.
  const float q[1] = {1}, k[3] = {0, 0, 0}, v[3] = {100, 10, 20};
  float out[1];
  causal_attention(q, k, v, 1, 2, 1, 1, 1, 1.0f, 0, out);
  EXPECT_NEAR(out[0], 130.0 / 3, 1e-4);
  causal_attention(q, k, v, 1, 2, 1, 1, 1, 1.0f, 2, out);
  EXPECT_NEAR(out[0], 15.0, 1e-5);
  causal_attention(q, k, v, 1, 2, 1, 1, 1, 1.0f, 1, out);  // only itself
  EXPECT_NEAR(out[0], 20.0, 1e-5);
}

// The batched (sgemm per head) path equals the per-token path, with and without a window and
// with tokens already in the cache.
TEST(EngineOps, BatchedAttentionEqualsPerTokenAttention) {
  const int64_t n_head = 4, n_head_kv = 2, D = 8, pos0 = 3, n = 13;  // n >= kAttentionGemmTokens
  ASSERT_GE(n, kAttentionGemmTokens);
  std::mt19937 rng(9);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  auto fill = [&](size_t count) {
    std::vector<float> x(count);
    for (auto& e : x) e = dist(rng);
    return x;
  };
  const auto q = fill(static_cast<size_t>(n * n_head * D));
  const auto k = fill(static_cast<size_t>((pos0 + n) * n_head_kv * D));
  const auto v = fill(k.size());
  for (int64_t window : {0, 5}) {
    std::vector<float> batched(q.size()), single(q.size());
    causal_attention(q.data(), k.data(), v.data(), n, pos0, n_head, n_head_kv, D, 0.35f, window, batched.data());
    for (int64_t t = 0; t < n; ++t)
      causal_attention(q.data() + t * n_head * D, k.data(), v.data(), 1, pos0 + t, n_head, n_head_kv, D, 0.35f, window,
                       single.data() + t * n_head * D);
    for (size_t i = 0; i < q.size(); ++i) ASSERT_NEAR(batched[i], single[i], 1e-5) << "window " << window << " at " << i;
  }
}

TEST(EngineOps, MatmulRowsTimesInputsPlusBias) {
  const std::vector<float> values = {1, 2, 3,    // output 0
                                     -1, 0, 1};  // output 1
  Weight w = make_weight_f32("w", 3, 2, values);
  const float x[6] = {1, 1, 1,   // token 0
                      2, 0, -1}; // token 1
  float y[4];
  matmul(w, x, 2, y);
  EXPECT_FLOAT_EQ(y[0], 6.0f);
  EXPECT_FLOAT_EQ(y[1], 0.0f);
  EXPECT_FLOAT_EQ(y[2], -1.0f);
  EXPECT_FLOAT_EQ(y[3], -3.0f);
  w.bias = {10, 20};
  matmul(w, x, 1, y);
  EXPECT_FLOAT_EQ(y[0], 16.0f);
  EXPECT_FLOAT_EQ(y[1], 20.0f);
  // Long rows take the vector path plus a tail.
  const Weight l = make_weight_f32("l", 19, 1, std::vector<float>(19, 1.0f));
  std::vector<float> xs(19);
  for (int i = 0; i < 19; ++i) xs[i] = static_cast<float>(i);
  matmul(l, xs.data(), 1, y);
  EXPECT_FLOAT_EQ(y[0], 171.0f);
}

// Prefill of a whole sequence and prefill of a prefix followed by single-token decodes see the
// same tokens at the same positions, so their logits agree up to summation order.
TEST(EngineForward, PrefillMatchesTokenByTokenDecode) {
  const ModelSource src = open_model_source(test::stories260k());
  const Model model = load_model(src);
  ASSERT_EQ(model.hp.n_vocab, 512);
  ASSERT_EQ(model.hp.n_head, 8);
  ASSERT_EQ(model.hp.n_head_kv, 4);
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432, 383, 286};
  const int64_t V = model.hp.n_vocab, n = static_cast<int64_t>(tokens.size());
  KVCache batch = make_kv_cache(model, 16);
  std::vector<float> all(static_cast<size_t>(n * V));
  forward(model, batch, tokens, true, all.data());
  EXPECT_EQ(batch.n_past, n);

  KVCache step = make_kv_cache(model, 12);
  std::vector<float> one(static_cast<size_t>(V));
  forward(model, step, std::span(tokens).first(3), false, one.data());
  for (int64_t i = 0; i < V; ++i) ASSERT_NEAR(one[i], all[2 * V + i], 1e-4);
  for (int64_t t = 3; t < n; ++t) {
    forward(model, step, std::span(tokens).subspan(t, 1), false, one.data());
    for (int64_t i = 0; i < V; ++i) ASSERT_NEAR(one[i], all[t * V + i], 1e-4) << "position " << t;
  }
  // The greedy path the oracle checks against llama.cpp starts ", there": token 403 after BOS.
  EXPECT_EQ(argmax(all.data(), V), 403);

  // A batch past the context, an empty batch and an unknown token are input errors.
  EXPECT_THROW(forward(model, step, tokens, false, one.data()), InputError);
  KVCache fresh = make_kv_cache(model, 16);
  EXPECT_THROW(forward(model, fresh, std::span<const int32_t>(), false, one.data()), InputError);
  const std::vector<int32_t> bad = {1, 512};
  EXPECT_THROW(forward(model, fresh, bad, false, one.data()), InputError);
}

TEST(EngineForward, F16CacheStaysCloseToF32) {
  const ModelSource src = open_model_source(test::stories260k());
  const Model model = load_model(src);
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432, 383, 286};
  const int64_t V = model.hp.n_vocab, n = static_cast<int64_t>(tokens.size());
  std::vector<float> ref(static_cast<size_t>(n * V)), half(ref.size());
  KVCache c32 = make_kv_cache(model, 16);
  forward(model, c32, tokens, true, ref.data());
  // Mixed per layer: F16 in odd layers only.
  std::vector<KVType> types(static_cast<size_t>(model.hp.n_layer), KVType::F32);
  for (size_t i = 1; i < types.size(); i += 2) types[i] = KVType::F16;
  KVCache c16 = make_kv_cache(model, 16, types);
  EXPECT_EQ(c16.layers[1].k_type(), KVType::F16);
  EXPECT_EQ(c16.layers[1].v_type(), KVType::F16);
  EXPECT_EQ(c16.layers[0].k_type(), KVType::F32);
  forward(model, c16, tokens, true, half.data());
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) worst = std::max(worst, std::abs(double(ref[i]) - half[i]));
  EXPECT_GT(worst, 0.0);  // the cache really rounds
  EXPECT_LT(worst, 2e-2);
  EXPECT_THROW(parse_kv_type("q4_k"), InputError);
}

// Re-running from a block with cached inputs gives what a full pass with the same weight
// swapped in gives, and nothing when the swap is an exact copy.
TEST(EngineForward, ForwardFromBlockEqualsFullPassWithTheSwap) {
  const ModelSource src = open_model_source(test::stories260k());
  const Model model = load_model(src);
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432, 383, 286};
  const int64_t V = model.hp.n_vocab, n = static_cast<int64_t>(tokens.size());
  std::vector<float> full(static_cast<size_t>(n * V)), part(full.size()), from0(full.size());
  KVCache cache = make_kv_cache(model, 16);
  forward(model, cache, tokens, true, full.data());

  const BlockInputCache inputs = capture_block_inputs(model, tokens);
  ASSERT_EQ(inputs.inputs.size(), static_cast<size_t>(model.hp.n_layer + 1));
  forward_from_block(model, inputs, 3, {}, part.data());
  for (size_t i = 0; i < full.size(); ++i) ASSERT_NEAR(part[i], full[i], 1e-4) << i;

  const Weight& target = model.layers[2].ffn_down;
  EXPECT_EQ(block_of(model, target), 2);
  EXPECT_EQ(block_of(model, model.output), model.hp.n_layer);
  Weight foreign = target;
  EXPECT_THROW(block_of(model, foreign), std::invalid_argument);
  std::vector<int32_t> all_rows(static_cast<size_t>(target.n_out));
  for (size_t r = 0; r < all_rows.size(); ++r) all_rows[r] = static_cast<int32_t>(r);
  std::vector<float> values(static_cast<size_t>(target.n_out * target.n_in));
  get_rows(target, all_rows, values.data());
  for (float& w : values) w *= 0.5f;
  const Weight halved = make_weight_f32(target.name, target.n_in, target.n_out, values);
  forward_from_block(model, inputs, 2, {&target, &halved}, part.data());
  forward_from_block(model, inputs, 0, {&target, &halved}, from0.data());
  double moved = 0;
  for (size_t i = 0; i < full.size(); ++i) {
    ASSERT_NEAR(part[i], from0[i], 1e-4) << i;
    moved = std::max(moved, std::abs(double(part[i]) - full[i]));
  }
  EXPECT_GT(moved, 1e-2);  // the swap changes the output
}

// Equal-length sequences batched into one cache give each sequence's own logits.
TEST(EngineForward, BatchedSequencesEqualSeparateRuns) {
  const ModelSource src = open_model_source(test::stories260k());
  const Model model = load_model(src);
  const std::vector<int32_t> a = {1, 403, 407, 261, 378, 432, 383, 286, 300, 270};
  const std::vector<int32_t> b = {1, 320, 289, 330, 281, 259, 376, 418, 265, 272};
  std::vector<int32_t> both = a;
  both.insert(both.end(), b.begin(), b.end());
  const int64_t V = model.hp.n_vocab, n = static_cast<int64_t>(a.size());
  const BlockInputCache batched = capture_block_inputs(model, both, 2);
  std::vector<float> joint(static_cast<size_t>(2 * n * V)), single(static_cast<size_t>(n * V));
  forward_from_block(model, batched, 1, {}, joint.data());
  for (int k = 0; k < 2; ++k) {
    forward_from_block(model, capture_block_inputs(model, k == 0 ? a : b), 1, {}, single.data());
    for (size_t i = 0; i < single.size(); ++i) ASSERT_NEAR(joint[k * n * V + i], single[i], 1e-4) << k << " " << i;
  }
  EXPECT_THROW(capture_block_inputs(model, std::vector<int32_t>(both.begin(), both.end() - 1), 2), std::invalid_argument);
}

TEST(EngineLoad, ClearErrorsForMissingTensorsAndOverlongContext) {
  test::ScratchDir dir;
  GgufFile src(test::stories260k().string());
  std::vector<GgufTensorDecl> decls;
  std::vector<const GgufTensorInfo*> kept;
  for (const auto& t : src.tensors())
    if (t.name != "blk.1.ffn_up.weight") {
      decls.push_back({t.name, t.type, t.shape});
      kept.push_back(&t);
    }
  const std::string path = (dir / "missing.gguf").string();
  write_gguf(path, src.metadata(), decls, [&](size_t i, GgufTensorSink& sink) {
    const auto bytes = src.tensor_data(*kept[i]);
    sink.write(bytes.data(), bytes.size());
  });
  try {
    load_model(open_model_source(path));
    FAIL() << "a model without blk.1.ffn_up.weight loaded";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("blk.1.ffn_up.weight is missing"), std::string::npos) << e.what();
  }
  const Model model = load_model(open_model_source(test::stories260k()));
  EXPECT_NO_THROW(make_kv_cache(model, 2048));  // llama.context_length
  EXPECT_THROW(make_kv_cache(model, 2049), InputError);
}

TEST(CliGenerate, ContinuesAndRejectsBadPrompts) {
  const std::string model = test::stories260k().string();
  auto r = test::run_optiq("generate " + model + " -p 'Once upon a time' -n 8");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind(", there was a little girl", 0), 0u) << r.output;
  r = test::run_optiq("generate " + model + " -p ''");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("prompt is empty"), std::string::npos) << r.output;
  r = test::run_optiq("generate " + model + " -p 'Once upon a time' -c 3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("longer than the context"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace optiq::engine
