// `optiq benchmark` end to end on stories260K: the JSON it prints carries one measurement per
// repetition, all positive, and the model's size and bits per weight.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "test_util.h"

namespace optiq {
namespace {

TEST(Benchmark, ReportsSpeedSizeAndMemory) {
  const auto r = test::run_optiq("benchmark " + test::stories260k().string() + " -p 16 -n 8 -r 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["prefill_tps"].size(), 2u);
  ASSERT_EQ(j["decode_tps"].size(), 2u);
  for (double v : j["prefill_tps"]) EXPECT_GT(v, 0);
  for (double v : j["decode_tps"]) EXPECT_GT(v, 0);
  EXPECT_GT(j["first_token_ms"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(j["bits_per_weight"].get<double>(), 32.0);  // stories260K is all F32
  EXPECT_GT(j["peak_rss_mib"].get<double>(), 1.0);
  // A model that does not exist is an input error, not a crash.
  EXPECT_EQ(test::run_optiq("benchmark /nonexistent.gguf").exit_code, 2);
}

TEST(Benchmark, BaselineSideBySideWithPerplexity) {
  const std::string model = test::stories260k().string();
  // The text the perplexity oracle uses: stories260K's own kind of text.
  const std::string fixture = (test::fixtures_dir() / "stories.txt").string();
  auto r = test::run_optiq("benchmark " + model + " -p 16 -n 8 -r 1 -f " + fixture + " -c 64 --chunks 2 --baseline " + model + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["model"]["size_bytes"], j["baseline"]["size_bytes"]);
  EXPECT_GT(j["model"]["ppl"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["model"]["ppl"].get<double>(), j["baseline"]["ppl"].get<double>());  // same model, same numbers
  EXPECT_GT(j["baseline"]["peak_rss_mib"].get<double>(), 1.0);
  r = test::run_optiq("benchmark " + model + " -p 16 -n 8 -r 1 --baseline " + model);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("| decode tokens/s |"), std::string::npos) << r.output;
  EXPECT_EQ(test::run_optiq("benchmark " + model + " -p 16 -n 8 --baseline /nonexistent.gguf").exit_code, 2);
}

}  // namespace
}  // namespace optiq
