// LoRA adapters (src/lora, engine/low_rank.h): the unmerged product against the merged weights,
// per-sequence adapter sets in one batch against runs of their own, GGUF-LoRA write/read with
// per-module scales folded into B, the PATH[:SCALE] form and the refusals. The PEFT reader, the
// merge and llama.cpp's --lora are checked by oracle_lora (tests/oracle/check_lora.py).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "lora/adapter.h"
#include "lora/gguf_lora.h"
#include "quant/float16.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "util/error.h"

namespace optiq {
namespace {

using engine::KVCache;
using lora::Adapter;
using lora::LoraMatrix;

// A rank-r matrix of random factors for one of the tiny llama's weights.
LoraMatrix random_matrix(const engine::Weight& w, int64_t rank, float scale, uint32_t seed) {
  LoraMatrix m;
  m.target = w.name;
  m.rank = rank;
  m.n_in = w.n_in;
  m.n_out = w.n_out;
  m.a = test::random_values(static_cast<size_t>(rank * w.n_in), seed, 0.2f);
  m.b_t = test::random_values(static_cast<size_t>(rank * w.n_out), seed + 1, 0.2f);
  m.scale = scale;
  return m;
}

// An adapter on q, v and down of every block (different ranks and scales).
Adapter random_adapter(const engine::Model& m, uint32_t seed) {
  Adapter a;
  a.path = "test adapter";
  a.architecture = "llama";
  for (const engine::Layer& L : m.layers) {
    a.matrices.push_back(random_matrix(L.wq, 4, 0.5f, seed++));
    a.matrices.push_back(random_matrix(L.wv, 2, 2.0f, seed++));
    a.matrices.push_back(random_matrix(L.ffn_down, 3, 1.0f, seed++));
  }
  lora::make_f16_factors(a);
  return a;
}

std::vector<float> last_logits(const engine::Model& m, std::span<const int32_t> tokens) {
  KVCache cache = engine::make_kv_cache(m, 32);
  std::vector<float> logits(static_cast<size_t>(m.hp.n_vocab));
  engine::forward(m, cache, tokens, false, logits.data());
  return logits;
}

const std::vector<int32_t> kPrompt = {3, 17, 5, 29, 11, 2, 38};

// y = W·x + s·B·(A·x) on every pass equals the model whose f32 weights are W + s·B·A, A and B
// as the engine holds them (rounded to f16).
TEST(Lora, UnmergedEqualsMergedWeights) {
  engine::Model m = test::tiny_llama({});
  const Adapter adapter = random_adapter(m, 100);
  engine::Model merged = test::tiny_llama({});
  for (const LoraMatrix& lm : adapter.matrices) {
    for (engine::Layer& L : merged.layers)
      for (engine::Weight* w : {&L.wq, &L.wv, &L.ffn_down}) {
        if (w->name != lm.target) continue;
        auto* v = reinterpret_cast<float*>(w->data.data());
        for (int64_t o = 0; o < w->n_out; ++o)
          for (int64_t j = 0; j < lm.rank; ++j)
            for (int64_t i = 0; i < w->n_in; ++i)
              v[o * w->n_in + i] += lm.scale * f16_to_f32(lm.b_t_f16[static_cast<size_t>(j * w->n_out + o)]) *
                                  f16_to_f32(lm.a_f16[static_cast<size_t>(j * w->n_in + i)]);
      }
  }
  const std::vector<float> base = last_logits(m, kPrompt);
  m.deltas = lora::resolve(adapter, m, 1.0f);
  const std::vector<float> got = last_logits(m, kPrompt), want = last_logits(merged, kPrompt);
  double max_diff = 0, max_base_diff = 0;
  for (size_t v = 0; v < got.size(); ++v) {
    max_diff = std::max(max_diff, static_cast<double>(std::fabs(got[v] - want[v])));
    max_base_diff = std::max(max_base_diff, static_cast<double>(std::fabs(got[v] - base[v])));
  }
  EXPECT_LT(max_diff, 1e-4);
  EXPECT_GT(max_base_diff, 1e-2) << "the adapter should move the logits";
  // Scale 0 is the base model exactly.
  m.deltas = lora::resolve(adapter, m, 0.0f);
  EXPECT_EQ(last_logits(m, kPrompt), base);
}

// Three sequences in one batch, each with its own adapters (one, none, another at half scale),
// equal three runs of their own bit for bit; the batch's caches then hold the same rows.
TEST(Lora, PerSequenceAdaptersInOneBatch) {
  engine::Model m = test::tiny_llama({});
  const Adapter first = random_adapter(m, 200), second = random_adapter(m, 300);
  const std::vector<engine::LowRankDelta> d1 = lora::resolve(first, m, 1.0f), d3 = lora::resolve(second, m, 0.5f);
  const std::vector<engine::LowRankDeltas> sets = {d1, {}, d3};
  const auto n_vocab = static_cast<size_t>(m.hp.n_vocab);
  std::vector<KVCache> batched;
  std::vector<KVCache*> caches;
  for (int i = 0; i < 3; ++i) batched.push_back(engine::make_kv_cache(m, 32));
  for (KVCache& c : batched) caches.push_back(&c);
  const std::vector<int32_t> p0 = {1, 2, 3}, p1 = {4, 5}, p2 = {6, 7, 8, 9};
  const std::vector<std::span<const int32_t>> tokens = {p0, p1, p2};
  std::vector<float> together(3 * n_vocab);
  engine::forward_batch(m, caches, tokens, together.data(), sets);
  for (size_t i = 0; i < 3; ++i) {
    m.deltas.assign(sets[i].begin(), sets[i].end());
    KVCache alone = engine::make_kv_cache(m, 32);
    std::vector<float> logits(n_vocab);
    for (const int32_t t : tokens[i]) engine::forward(m, alone, std::span(&t, 1), false, logits.data());
    // The batch ran each prompt as one chunk; token by token is the same arithmetic only for the
    // last row, so compare within roundoff there and exactly on the next decode step.
    for (size_t v = 0; v < n_vocab; ++v) EXPECT_NEAR(together[i * n_vocab + v], logits[v], 1e-4f) << "sequence " << i;
  }
  m.deltas.clear();
  // One decode step for all three: each equals a one-sequence batch with its own set.
  const int32_t next[3] = {10, 11, 12};
  const std::vector<std::span<const int32_t>> step = {{&next[0], 1}, {&next[1], 1}, {&next[2], 1}};
  std::vector<KVCache> copies = batched;
  engine::forward_batch(m, caches, step, together.data(), sets);
  for (size_t i = 0; i < 3; ++i) {
    KVCache* one[1] = {&copies[i]};
    const std::span<const int32_t> one_step[1] = {step[i]};
    const engine::LowRankDeltas one_set[1] = {sets[i]};
    std::vector<float> logits(n_vocab);
    engine::forward_batch(m, one, one_step, logits.data(), one_set);
    EXPECT_EQ(std::memcmp(together.data() + i * n_vocab, logits.data(), n_vocab * sizeof(float)), 0) << "sequence " << i;
  }
  const std::vector<engine::LowRankDeltas> too_few = {d1};
  EXPECT_THROW(engine::forward_batch(m, caches, step, together.data(), too_few), std::invalid_argument);
}

// Matrices with different scales share the file's one alpha: read back, each B·scale is the same.
TEST(Lora, GgufLoraRoundTripFoldsPerModuleScales) {
  const engine::Model m = test::tiny_llama({});
  const Adapter adapter = random_adapter(m, 400);
  const test::ScratchDir dir;
  lora::write_gguf_lora(adapter, dir / "a.gguf");
  const Adapter back = lora::load_adapter(dir / "a.gguf", m);
  ASSERT_EQ(back.matrices.size(), adapter.matrices.size());
  EXPECT_EQ(back.architecture, "llama");
  for (const LoraMatrix& want : adapter.matrices) {
    const LoraMatrix* got = nullptr;
    for (const LoraMatrix& g : back.matrices)
      if (g.target == want.target) got = &g;
    ASSERT_NE(got, nullptr) << want.target;
    EXPECT_EQ(got->rank, want.rank);
    EXPECT_EQ(got->a, want.a);
    for (size_t j = 0; j < want.b_t.size(); ++j)
      EXPECT_NEAR(got->scale * got->b_t[j], want.scale * want.b_t[j], 1e-6f * std::fabs(want.scale * want.b_t[j]) + 1e-9f);
  }
  EXPECT_EQ(dir.entries().size(), 1u) << "no temporary file left behind";
}

TEST(Lora, RefusesAdaptersThatDoNotFit) {
  const engine::Model m = test::tiny_llama({});
  const test::ScratchDir dir;
  const auto refused = [&](Adapter a, const std::string& expect) {
    lora::write_gguf_lora(a, dir / "bad.gguf");
    try {
      lora::load_adapter(dir / "bad.gguf", m);
      ADD_FAILURE() << "accepted, expected: " << expect;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
  };
  Adapter wrong_shape = random_adapter(m, 500);
  wrong_shape.matrices[1] = random_matrix(m.layers[0].wq, 2, 1.0f, 9);
  wrong_shape.matrices[1].target = m.layers[0].wv.name;  // q's shape under v's name
  refused(wrong_shape, "blk.0.attn_v.weight: the adapter is 256 x 128");
  Adapter nan = random_adapter(m, 600);
  nan.matrices[4].a[3] = NAN;
  refused(nan, m.layers[1].wv.name + ": holds NaN or Inf values");
  Adapter unknown = random_adapter(m, 700);
  unknown.matrices[0].target = "blk.7.attn_q.weight";
  refused(unknown, "blk.7.attn_q.weight: the base has no such projection (it has 3 blocks)");
  Adapter other_arch = random_adapter(m, 800);
  other_arch.architecture = "qwen2";
  refused(other_arch, "made for a qwen2 model; the base is llama");
  EXPECT_THROW(lora::load_adapter(test::stories260k(), m), InputError);  // a model, not an adapter
}

TEST(Lora, AdapterSpecSplitsAScaleSuffix) {
  EXPECT_EQ(lora::parse_adapter_spec("a/b.gguf").path, "a/b.gguf");
  EXPECT_EQ(lora::parse_adapter_spec("a/b.gguf").scale, 1.0f);
  EXPECT_EQ(lora::parse_adapter_spec("a/b.gguf:0.25").path, "a/b.gguf");
  EXPECT_EQ(lora::parse_adapter_spec("a/b.gguf:0.25").scale, 0.25f);
  EXPECT_EQ(lora::parse_adapter_spec("c:/x:y").path, "c:/x:y");  // not a number: part of the path
  EXPECT_EQ(lora::parse_adapter_spec("x:-1").scale, -1.0f);
}

}  // namespace
}  // namespace optiq
