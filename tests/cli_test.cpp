#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace optiq {
namespace {

using test::run_optiq;
using test::ScratchDir;

TEST(CliInfo, Stories260KFacts) {
  auto r = run_optiq("info --json " + test::stories260k().string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["tensors"].size(), 48u);
  EXPECT_EQ(j["hparams"]["embedding_length"], 64);
  EXPECT_EQ(j["hparams"]["block_count"], 5);
  EXPECT_EQ(j["hparams"]["attention.head_count"], 8);
  EXPECT_EQ(j["hparams"]["attention.head_count_kv"], 4);
  EXPECT_DOUBLE_EQ(j["bits_per_weight"].get<double>(), 32.0);

  auto text = run_optiq("info " + test::stories260k().string());
  ASSERT_EQ(text.exit_code, 0);
  EXPECT_NE(text.output.find("tensors (48)"), std::string::npos);
  EXPECT_NE(text.output.find("SentencePiece"), std::string::npos);
}

TEST(CliConvert, WritesF16AndReportsSize) {
  ScratchDir dir;
  auto r = run_optiq("convert " + test::stories260k().string() + " --outtype f16 -o " + (dir / "o.gguf").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("48 tensors"), std::string::npos);
  auto info = run_optiq("info --json " + (dir / "o.gguf").string());
  auto j = nlohmann::json::parse(info.output);
  EXPECT_LT(j["bits_per_weight"].get<double>(), 17.0);
  EXPECT_EQ(dir.entries().size(), 1u);
}

TEST(CliErrors, CorruptFileGivesOneLineAndExit2) {
  ScratchDir dir;
  auto bytes = test::read_file(test::stories260k());
  bytes.resize(5000);  // cut inside the tokenizer metadata
  test::write_file(dir / "cut.gguf", bytes);
  auto r = run_optiq("info " + (dir / "cut.gguf").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("cut.gguf: offset "), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;

  auto c = run_optiq("convert " + (dir / "cut.gguf").string() + " -o " + (dir / "o.gguf").string());
  EXPECT_EQ(c.exit_code, 2);
  EXPECT_EQ(dir.entries().size(), 1u) << "convert left a file behind";
}

TEST(CliErrors, UsageMistakesExit2) {
  EXPECT_EQ(run_optiq("").exit_code, 2);
  EXPECT_EQ(run_optiq("frobnicate").exit_code, 2);
  EXPECT_EQ(run_optiq("convert " + test::stories260k().string() + " --outtype q9 -o /tmp/x.gguf").exit_code, 2);
  auto missing = run_optiq("info /definitely/not/here.gguf");
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_NE(missing.output.find("not/here.gguf"), std::string::npos);
  EXPECT_EQ(run_optiq("--version").exit_code, 0);
}

}  // namespace
}  // namespace optiq
