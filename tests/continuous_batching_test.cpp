// Continuous batching: engine::forward_batch against one pass per sequence, and optiq serve's
// Generator running concurrent requests as batched decode steps.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "engine/model.h"
#include "model/model_source.h"
#include "serve/generator.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "util/error.h"

namespace optiq {
namespace {

using engine::KVCache;
using engine::KVType;

// Sequence i's prompt: 3 + 4i tokens of the tiny llama's vocabulary.
std::vector<int32_t> prompt_of(size_t i) {
  std::vector<int32_t> p(3 + 4 * i);
  for (size_t j = 0; j < p.size(); ++j) p[j] = static_cast<int32_t>((5 + 7 * j + 11 * i) % 40);
  return p;
}

TEST(ForwardBatch, DecodeStepsEqualOnePassPerSequenceBitForBit) {
  const engine::Model m = test::tiny_llama({});
  const auto n_vocab = static_cast<size_t>(m.hp.n_vocab);
  // Three sequences (under the 4-row sgemm threshold of float weights), every kind of cache.
  for (const KVType type : {KVType::F32, KVType::F16, KVType::Q8_0, KVType::Q4_0, KVType::TQ3}) {
    SCOPED_TRACE(std::string(engine::kv_type_name(type)));
    const std::vector<KVType> types(static_cast<size_t>(m.hp.n_layer), type);
    std::vector<KVCache> batched, alone;
    std::vector<float> logits(n_vocab);
    for (size_t i = 0; i < 3; ++i) {
      batched.push_back(engine::make_kv_cache(m, 64, types));
      alone.push_back(engine::make_kv_cache(m, 64, types));
      engine::forward(m, batched.back(), prompt_of(i), false, logits.data());
      engine::forward(m, alone.back(), prompt_of(i), false, logits.data());
    }
    std::vector<KVCache*> caches = {&batched[0], &batched[1], &batched[2]};
    for (int32_t step = 0; step < 3; ++step) {  // later steps read the rows the batch stored
      const int32_t next[3] = {1 + step, 17, 33 - step};
      const std::vector<std::span<const int32_t>> tokens = {{&next[0], 1}, {&next[1], 1}, {&next[2], 1}};
      std::vector<float> together(3 * n_vocab);
      engine::forward_batch(m, caches, tokens, together.data());
      for (size_t i = 0; i < 3; ++i) {
        engine::forward(m, alone[i], tokens[i], false, logits.data());
        EXPECT_EQ(std::memcmp(together.data() + i * n_vocab, logits.data(), n_vocab * sizeof(float)), 0)
            << "sequence " << i << ", step " << step;
        EXPECT_EQ(batched[i].n_past, alone[i].n_past);
      }
    }
  }
}

// Block weights: nine sequences go through the legacy blocks' many-rows kernels (two groups of
// four rows and one single row) and still equal a pass per sequence bit for bit.
TEST(ForwardBatch, ManyRowsKernelsKeepDecodeStepsBitForBit) {
  for (const GgmlType weight_type : {GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q5_1}) {
    SCOPED_TRACE(std::string(ggml_type_name(weight_type)));
    const engine::Model m = test::tiny_llama({.weight_type = weight_type});
    const auto n_vocab = static_cast<size_t>(m.hp.n_vocab);
    constexpr size_t kSeqs = 9;
    std::vector<KVCache> batched, alone;
    std::vector<float> logits(n_vocab);
    for (size_t i = 0; i < kSeqs; ++i) {
      batched.push_back(engine::make_kv_cache(m, 64));
      alone.push_back(engine::make_kv_cache(m, 64));
      engine::forward(m, batched.back(), prompt_of(i % 4), false, logits.data());
      engine::forward(m, alone.back(), prompt_of(i % 4), false, logits.data());
    }
    std::vector<KVCache*> caches;
    std::vector<int32_t> next(kSeqs);
    std::vector<std::span<const int32_t>> tokens;
    for (size_t i = 0; i < kSeqs; ++i) {
      caches.push_back(&batched[i]);
      next[i] = static_cast<int32_t>((3 * i + 1) % 40);
      tokens.emplace_back(&next[i], 1);
    }
    std::vector<float> together(kSeqs * n_vocab);
    engine::forward_batch(m, caches, tokens, together.data());
    for (size_t i = 0; i < kSeqs; ++i) {
      engine::forward(m, alone[i], tokens[i], false, logits.data());
      EXPECT_EQ(std::memcmp(together.data() + i * n_vocab, logits.data(), n_vocab * sizeof(float)), 0)
          << "sequence " << i;
    }
  }
}

TEST(ForwardBatch, PrefillChunkBesideDecodeStepsMatchesWithinRoundoff) {
  // Six rows take the sgemm path, whose f32 summation order differs from the dot kernels'.
  const engine::Model m = test::tiny_llama({.seed = 3});
  const auto n_vocab = static_cast<size_t>(m.hp.n_vocab);
  KVCache a = engine::make_kv_cache(m, 64), b = engine::make_kv_cache(m, 64);
  KVCache a_alone = engine::make_kv_cache(m, 64), b_alone = engine::make_kv_cache(m, 64);
  std::vector<float> logits(n_vocab), ref(n_vocab);
  engine::forward(m, a, prompt_of(2), false, logits.data());
  engine::forward(m, a_alone, prompt_of(2), false, logits.data());
  const std::vector<int32_t> decode = {9}, chunk = prompt_of(1);  // b starts empty: its whole prompt
  std::vector<KVCache*> caches = {&a, &b};
  const std::vector<std::span<const int32_t>> tokens = {decode, chunk};
  std::vector<float> together(2 * n_vocab);
  engine::forward_batch(m, caches, tokens, together.data());
  engine::forward(m, a_alone, decode, false, ref.data());
  for (size_t v = 0; v < n_vocab; ++v) EXPECT_NEAR(together[v], ref[v], 1e-4f) << v;
  engine::forward(m, b_alone, chunk, false, ref.data());
  for (size_t v = 0; v < n_vocab; ++v) EXPECT_NEAR(together[n_vocab + v], ref[v], 1e-4f) << v;
  EXPECT_EQ(a.n_past, 12);
  EXPECT_EQ(b.n_past, 7);
}

TEST(ForwardBatch, RejectsABadBatch) {
  const engine::Model m = test::tiny_llama({});
  KVCache a = engine::make_kv_cache(m, 8);
  std::vector<float> logits(2 * static_cast<size_t>(m.hp.n_vocab));
  const std::vector<int32_t> one = {1}, nine(9, 2), outside = {40};
  std::vector<KVCache*> twice = {&a, &a};
  EXPECT_THROW(engine::forward_batch(m, twice, std::vector<std::span<const int32_t>>{one, one}, logits.data()),
               std::invalid_argument);
  std::vector<KVCache*> single = {&a};
  EXPECT_THROW(engine::forward_batch(m, single, std::vector<std::span<const int32_t>>{one, one}, logits.data()),
               std::invalid_argument);
  EXPECT_THROW(engine::forward_batch(m, single, std::vector<std::span<const int32_t>>{nine}, logits.data()), InputError);
  EXPECT_THROW(engine::forward_batch(m, single, std::vector<std::span<const int32_t>>{outside}, logits.data()), InputError);
  EXPECT_EQ(a.n_past, 0);
}

// The server's generator on stories260K (F32 weights: batches of up to 3 decode steps are exact),
// three slots, greedy. The three requests line up after their first token (a latch in the text
// sink), and the gather window is long, so that the batching does not depend on how the threads
// happen to be scheduled on a loaded machine.
TEST(ServeBatching, ConcurrentRequestsShareDecodePassesAndKeepTheirText) {
  const std::string path = test::stories260k().string();
  const engine::Model model = engine::load_model(open_model_source(path));
  const Tokenizer tok = load_tokenizer(path);
  serve::Generator::Options options;
  options.n_ctx = 256;
  options.n_slots = 3;
  options.prompt_cache = false;
  options.gather_window = std::chrono::seconds(5);
  serve::Generator gen(model, tok, std::nullopt, options);
  const std::vector<std::string> prompts = {"Once upon a time", "The little dog", "Lily and Tom went to the park"};
  const auto request = [&](const std::string& prompt) {
    serve::GenerationRequest req;
    req.chat = false;
    req.prompt = prompt;
    req.max_tokens = 40;
    req.sampling.temperature = 0.0f;
    return req;
  };
  const auto run = [&](const std::string& prompt, std::latch* line_up) {
    serve::GenerationRequest req = request(prompt);
    std::vector<int32_t> ids = gen.tokenize_prompt(req);
    auto slot = gen.acquire_slot(ids);
    bool first = true;
    return gen.generate(*slot, req, ids, [&](const std::string&, std::span<const serve::TokenLogprob>) {
      if (line_up && std::exchange(first, false)) line_up->arrive_and_wait();
      return true;
    }).text;
  };
  std::vector<std::string> alone;
  for (const std::string& p : prompts) alone.push_back(run(p, nullptr));
  const serve::SlotGauges before = gen.slot_gauges();
  EXPECT_EQ(before.decode_batch_rows, before.decode_batches);  // one request at a time: batches of one

  std::vector<std::string> together(prompts.size());
  std::latch line_up(static_cast<ptrdiff_t>(prompts.size()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < prompts.size(); ++i) threads.emplace_back([&, i] { together[i] = run(prompts[i], &line_up); });
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(together[i], alone[i]) << prompts[i];
  const serve::SlotGauges after = gen.slot_gauges();
  const uint64_t batches = after.decode_batches - before.decode_batches;
  const uint64_t rows = after.decode_batch_rows - before.decode_batch_rows;
  EXPECT_EQ(rows, before.decode_batch_rows);  // the same steps as one by one
  EXPECT_GT(rows, 60u);
  // Most steps ran together: far fewer passes than steps.
  EXPECT_LT(batches, rows * 2 / 3) << batches << " passes for " << rows << " steps";
}

}  // namespace
}  // namespace optiq
