// Perplexity and KL divergence: the formulas on hand-worked values, the base-file codec, chunk
// evaluation independent of the batch size, and the command's errors on bad inputs. (Agreement
// with llama-perplexity itself is the oracle test oracle_perplexity.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "engine/model.h"
#include "eval/kl_divergence.h"
#include "eval/logits_file.h"
#include "eval/perplexity.h"
#include "model/model_source.h"
#include "gguf_copy.h"
#include "test_util.h"

namespace optiq::eval {
namespace {

using test::run_optiq;
using test::ScratchDir;

const std::filesystem::path kStories = test::fixtures_dir() / "stories.txt";

std::string stories_model() { return test::stories260k().string(); }

TEST(Perplexity, TokenNllIsMinusLogSoftmax) {
  // softmax(0, ln 3) = (1/4, 3/4).
  const float logits[2] = {0.0f, std::log(3.0f)};
  EXPECT_NEAR(token_nll(logits, 2, 0), std::log(4.0), 1e-6);
  EXPECT_NEAR(token_nll(logits, 2, 1), std::log(4.0 / 3.0), 1e-6);
}

TEST(Perplexity, EstimateFromSums) {
  // nll = 1, 2, 3: mean 2, variance 14/3 - 4 = 2/3, error of the mean sqrt(2/3 / 2).
  const PerplexityEstimate e = estimate_perplexity(6.0, 14.0, 3);
  EXPECT_NEAR(e.ppl, std::exp(2.0), 1e-12);
  ASSERT_TRUE(e.has_error);
  EXPECT_NEAR(e.error, std::exp(2.0) * std::sqrt(1.0 / 3.0), 1e-12);
  // All nll equal: no spread, no error estimate.
  EXPECT_FALSE(estimate_perplexity(3.0, 3.0, 3).has_error);
}

TEST(Perplexity, ChunkInputPutsBosFirst) {
  const std::vector<int32_t> tokens = {1, 10, 11, 12, 13, 14, 15, 16};
  ChunkSetup setup;
  setup.n_ctx = 4;
  setup.bos = 1;
  EXPECT_EQ(chunk_input(tokens, 1, setup), (std::vector<int32_t>{1, 14, 15, 16}));
  setup.bos = -1;
  EXPECT_EQ(chunk_input(tokens, 1, setup), (std::vector<int32_t>{13, 14, 15, 16}));
}

TEST(LogitsFile, RowRoundTripsWithinOneStep) {
  const int64_t n_vocab = 5;  // odd: the row has a padding word
  const float logits[5] = {1.0f, -3.0f, 2.5f, -30.0f, 0.0f};
  std::vector<uint16_t> row(static_cast<size_t>(row_words(n_vocab)));
  ASSERT_EQ(row.size(), 10u);
  const double nll = encode_log_probs(logits, n_vocab, 2, row.data());
  std::vector<float> lp(5);
  double z = 0;
  for (float x : logits) z += std::exp(x);
  float scale, min_log_prob;
  std::memcpy(&scale, row.data(), 4);
  std::memcpy(&min_log_prob, row.data() + 2, 4);
  EXPECT_NEAR(scale, 16.0f / 65535, 1e-9);  // the range is cut to 16 below the top logit
  for (int64_t i = 0; i < n_vocab; ++i) {
    const double expected = std::max(logits[i] - std::log(z), 2.5 - 16 - std::log(z));
    EXPECT_NEAR(decode_log_prob(row.data(), i, scale, min_log_prob), expected, scale) << i;
  }
  EXPECT_NEAR(nll, std::log(z) - 2.5, 1e-5);
  EXPECT_EQ(row[9], 0);
}

TEST(KlDivergence, OfADistributionWithItselfIsZero) {
  const int64_t n_vocab = 4;
  const float logits[4] = {0.5f, 2.0f, -1.0f, 1.0f};
  std::vector<uint16_t> row(static_cast<size_t>(row_words(n_vocab)));
  encode_log_probs(logits, n_vocab, 3, row.data());
  KldSums sums;
  const auto [kld, p_diff] = kld_token(logits, n_vocab, row.data(), 3, sums);
  EXPECT_NEAR(kld, 0.0, 1e-4);
  EXPECT_NEAR(p_diff, 0.0f, 1e-4f);
  EXPECT_EQ(sums.n_same_top, 1);
  EXPECT_EQ(sums.count, 1);
}

TEST(KlDivergence, OfTwoKnownDistributions) {
  // base p = (3/4, 1/4), model q = (1/4, 3/4): KLD = 3/4 ln 3 + 1/4 ln(1/3) = ln(3) / 2.
  const float base_logits[2] = {std::log(3.0f), 0.0f};
  const float logits[2] = {0.0f, std::log(3.0f)};
  std::vector<uint16_t> row(static_cast<size_t>(row_words(2)));
  encode_log_probs(base_logits, 2, 0, row.data());
  KldSums sums;
  const auto [kld, p_diff] = kld_token(logits, 2, row.data(), 0, sums);
  EXPECT_NEAR(kld, std::log(3.0) / 2, 1e-3);
  EXPECT_NEAR(p_diff, 0.25f - 0.75f, 1e-3f);
  EXPECT_EQ(sums.n_same_top, 0);
  EXPECT_NEAR(sums.nll, std::log(4.0), 1e-5);
  EXPECT_NEAR(sums.nll_base, std::log(4.0 / 3.0), 1e-3);
}

TEST(Perplexity, ChunkLogitsDoNotDependOnTheBatchSize) {
  const engine::Model model = engine::load_model(open_model_source(stories_model()));
  std::vector<int32_t> chunk;
  for (int i = 0; i < 40; ++i) chunk.push_back(1 + (i * 37) % 500);
  ChunkSetup whole;
  whole.n_ctx = 40;
  whole.n_batch = 2048;
  ChunkSetup split = whole;
  split.n_batch = 7;  // calls end at 7, 14, 20 (the scored half), 21, 28, 35, 40
  engine::KVCache cache = engine::make_kv_cache(model, 40);
  std::vector<float> a, b;
  chunk_logits(model, cache, chunk, whole, a);
  chunk_logits(model, cache, chunk, split, b);
  ASSERT_EQ(a.size(), static_cast<size_t>(20 * model.hp.n_vocab));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-4) << i;
}

TEST(PerplexityCli, BaseFileRoundTripsThroughKlDivergence) {
  ScratchDir dir;
  const std::string base = (dir / "base.bin").string();
  auto ppl = run_optiq("perplexity " + stories_model() + " -f " + kStories.string() + " -c 64 --chunks 4 --kl-divergence-base " + base);
  ASSERT_EQ(ppl.exit_code, 0) << ppl.output;
  EXPECT_NE(ppl.output.find("[4]"), std::string::npos) << ppl.output;
  EXPECT_EQ(ppl.output.find("[5]"), std::string::npos) << ppl.output;
  EXPECT_NE(ppl.output.find("Final estimate: PPL = "), std::string::npos) << ppl.output;
  // header, 4 * 64 tokens, 4 chunks of 31 rows of (512 + 4) words
  EXPECT_EQ(std::filesystem::file_size(base), 20u + 4 * 256 + 2u * 4 * 31 * 516);
  EXPECT_EQ(dir.entries().size(), 1u);

  auto kld = run_optiq("perplexity " + stories_model() + " --kl-divergence --kl-divergence-base " + base + " -f " +
                       kStories.string());
  ASSERT_EQ(kld.exit_code, 0) << kld.output;
  EXPECT_NE(kld.output.find("Same top p: 100.000 ± 0.000 %"), std::string::npos) << kld.output;
  // The base's 16-bit codes are all that separates the two: |KLD| stays below 1e-5.
  const size_t at = kld.output.find("Mean    KLD:");
  ASSERT_NE(at, std::string::npos) << kld.output;
  EXPECT_LT(std::fabs(std::strtod(kld.output.c_str() + at + 12, nullptr)), 1e-5) << kld.output;
}

TEST(PerplexityCli, ContextBeyondTrainingIsAnError) {
  ScratchDir dir;
  const std::string model = (dir / "short-ctx.gguf").string();
  test::copy_gguf_with(stories_model(), model, "llama.context_length", GgufValue::of<uint32_t>(64));
  auto r = run_optiq("perplexity " + model + " -f " + kStories.string() + " -c 128 --chunks 1");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("a context of 128 tokens is longer than the 64 the model was trained on"), std::string::npos)
      << r.output;
  EXPECT_EQ(run_optiq("perplexity " + model + " -f " + kStories.string() + " -c 64 --chunks 1").exit_code, 0);
}

TEST(PerplexityCli, BadInputsGiveOneClearError) {
  ScratchDir dir;
  test::write_file(dir / "short.txt", std::vector<std::byte>{std::byte{'O'}, std::byte{'n'}, std::byte{'c'}, std::byte{'e'}});
  auto shortr = run_optiq("perplexity " + stories_model() + " -f " + (dir / "short.txt").string() + " -c 64");
  EXPECT_EQ(shortr.exit_code, 2);
  EXPECT_NE(shortr.output.find("needs at least 128"), std::string::npos) << shortr.output;

  const std::string base = (dir / "base.bin").string();
  ASSERT_EQ(run_optiq("perplexity " + stories_model() + " -f " + kStories.string() + " -c 64 --chunks 2 --kl-divergence-base " + base).exit_code, 0);
  auto bytes = test::read_file(base);

  // Cut inside the second chunk's log-probabilities.
  auto cut = bytes;
  cut.resize(cut.size() - 1000);
  test::write_file(dir / "cut.bin", cut);
  auto r = run_optiq("perplexity " + stories_model() + " --kl-divergence --kl-divergence-base " + (dir / "cut.bin").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("cut.bin: offset " + std::to_string(cut.size()) + ": the file ends here"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("need " + std::to_string(bytes.size()) + " bytes"), std::string::npos) << r.output;

  // Another text than the one the base was computed on.
  r = run_optiq("perplexity " + stories_model() + " --kl-divergence --kl-divergence-base " + base + " -f " +
                (dir / "short.txt").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("computed on another text"), std::string::npos) << r.output;

  // A consistent file for a 100-token vocabulary: n_ctx 4 (one scored row), one chunk.
  std::vector<std::byte> other(static_cast<size_t>(20 + 16 + 2 * row_words(100)));
  std::memcpy(other.data(), kLogitsMagic, 8);
  const int32_t header[3] = {4, 100, 1};
  std::memcpy(other.data() + 8, header, 12);
  test::write_file(dir / "other.bin", other);
  r = run_optiq("perplexity " + stories_model() + " --kl-divergence --kl-divergence-base " + (dir / "other.bin").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("vocabulary of 100 tokens, the model has 512"), std::string::npos) << r.output;

  // Not a base file at all.
  r = run_optiq("perplexity " + stories_model() + " --kl-divergence --kl-divergence-base " + kStories.string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("_logits_"), std::string::npos) << r.output;

  // --kl-divergence without a base.
  EXPECT_EQ(run_optiq("perplexity " + stories_model() + " --kl-divergence").exit_code, 2);
}

}  // namespace
}  // namespace optiq::eval
