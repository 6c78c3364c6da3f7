// `optiq convert` end to end on stories260K: the outputs, resuming after kill -9 with the same
// plan, invalidation by a changed option, budgets out of range, --dry-run, --protect, the fast
// proxy, and bad calibration mixes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstring>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>

#include "model/model_source.h"
#include "test_util.h"

extern char** environ;

namespace optiq {
namespace {

using test::read_text;
using test::run_optiq;
using test::ScratchDir;

// Small and quick: 3 sequences of 64 tokens (unless `extra` says otherwise), one held out.
const std::string kQuick = " --seq-len 64 --n-held-out 1 -t 1";

size_t count_lines(const std::filesystem::path& p) {
  const std::string s = read_text(p);
  return static_cast<size_t>(std::count(s.begin(), s.end(), '\n'));
}

std::string convert(const std::filesystem::path& out, const std::string& extra = "") {
  const std::string n = extra.find("--n-calibration") == std::string::npos ? " --n-calibration 3" : "";
  return "convert " + test::stories260k().string() + " -o " + out.string() + kQuick + n + extra;
}

TEST(MixedConvert, WritesTheFileAndEverythingBesideIt) {
  ScratchDir dir;
  const auto out = dir / "out";
  auto r = run_optiq(convert(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"llama-optiq.gguf", "optiq-report.json", "README.md", "tensor-types.txt", "imatrix.gguf",
                        "sensitivity.jsonl"})
    EXPECT_TRUE(std::filesystem::exists(out / f)) << f;
  EXPECT_NE(r.output.find("additivity check"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("solvers: greedy sum"), std::string::npos);

  const auto report = nlohmann::json::parse(read_text(out / "optiq-report.json"));
  const auto& totals = report["totals"];
  EXPECT_LE(totals["bytes"].get<uint64_t>(), totals["budget_bytes"].get<uint64_t>());
  EXPECT_GT(totals["measured_kl"].get<double>(), 0.0);
  EXPECT_LE(totals["exact_objective"].get<double>(), totals["greedy_objective"].get<double>() + 1e-15);
  EXPECT_EQ(report["tensors"].size(), 37u);  // 5 layers × 7 matrices, token_embd and output
  // The sizes the report claims are the file's.
  auto info = run_optiq("info --json " + (out / "llama-optiq.gguf").string());
  ASSERT_EQ(info.exit_code, 0) << info.output;
  const auto j = nlohmann::json::parse(info.output);
  EXPECT_NEAR(j["bits_per_weight"].get<double>(), totals["bpw"].get<double>(), 1e-9);
  // One tensor-types line per quantized tensor, anchored.
  EXPECT_EQ(count_lines(out / "tensor-types.txt"), report["tensors"].size());
  EXPECT_NE(read_text(out / "tensor-types.txt").find("^blk\\.0\\.attn_q\\.weight$="), std::string::npos);
  const std::string card = read_text(out / "README.md");
  for (const char* s : {"## Per-layer bit map", "## Calibration", "Predominant precision", "| prose |"})
    EXPECT_NE(card.find(s), std::string::npos) << s;
}

TEST(MixedConvert, ResumesAfterKill9WithTheSamePlan) {
  ScratchDir dir;
  const auto clean = dir / "clean", killed = dir / "killed";
  ASSERT_EQ(run_optiq(convert(clean)).exit_code, 0);
  const size_t total_lines = count_lines(clean / "sensitivity.jsonl");

  // Start the same run and kill -9 it once a few measurements are on disk.
  std::vector<std::string> words = {OPTIQ_BINARY};
  std::istringstream args(convert(killed));
  for (std::string w; args >> w;) words.push_back(w);
  std::vector<char*> argv;
  for (auto& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t quiet;
  posix_spawn_file_actions_init(&quiet);
  posix_spawn_file_actions_addopen(&quiet, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&quiet, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, OPTIQ_BINARY, &quiet, nullptr, argv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&quiet);
  const auto checkpoint = killed / "sensitivity.jsonl";
  for (int i = 0; i < 6000 && !(std::filesystem::exists(checkpoint) && count_lines(checkpoint) >= 6); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  const size_t done = count_lines(checkpoint);
  ASSERT_GE(done, 6u);
  ASSERT_LT(done, total_lines) << "the run finished before it could be killed";
  EXPECT_FALSE(std::filesystem::exists(killed / "llama-optiq.gguf"));

  auto r = run_optiq(convert(killed));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming from"), std::string::npos) << r.output;
  EXPECT_EQ(count_lines(checkpoint), total_lines) << "something was measured twice or not at all";
  const auto report = nlohmann::json::parse(read_text(killed / "optiq-report.json"));
  EXPECT_EQ(report["totals"]["measurements_resumed"].get<size_t>() + report["totals"]["measurements_made"].get<size_t>(),
            total_lines - 1);
  EXPECT_EQ(read_text(killed / "tensor-types.txt"), read_text(clean / "tensor-types.txt"));
  EXPECT_EQ(test::read_file(killed / "llama-optiq.gguf"), test::read_file(clean / "llama-optiq.gguf"));
}

TEST(MixedConvert, ChangedCalibrationInvalidatesTheCheckpoint) {
  ScratchDir dir;
  const auto out = dir / "out";
  ASSERT_EQ(run_optiq(convert(out)).exit_code, 0);
  auto r = run_optiq(convert(out, " --n-calibration 2"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("does not match this run ('calibration_tokens' differs"), std::string::npos) << r.output;
  EXPECT_TRUE(std::filesystem::exists(out / "sensitivity.jsonl.stale"));
  // Adding candidates only measures the new pairs.
  auto more = run_optiq(convert(out, " --n-calibration 2 --candidate-bits 4,6,8"));
  ASSERT_EQ(more.exit_code, 0) << more.output;
  EXPECT_NE(more.output.find("resuming from"), std::string::npos) << more.output;
}

TEST(MixedConvert, BudgetsOutOfRangeAreClearErrors) {
  ScratchDir dir;
  auto low = run_optiq(convert(dir / "a", " --target-bpw 2"));
  EXPECT_EQ(low.exit_code, 2);
  EXPECT_NE(low.output.find("below the smallest file these candidates make"), std::string::npos) << low.output;
  auto high = run_optiq(convert(dir / "b", " --target-bpw 40"));
  EXPECT_EQ(high.exit_code, 2);
  EXPECT_NE(high.output.find("above the largest file"), std::string::npos) << high.output;
  auto bad = run_optiq(convert(dir / "c", " --target-size 3parsecs"));
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("neither a size"), std::string::npos) << bad.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "a" / "llama-optiq.gguf"));
}

TEST(MixedConvert, DryRunWritesNothing) {
  ScratchDir dir;
  auto r = run_optiq(convert(dir / "out", " --dry-run --target-size 0.3MB"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("budget: 0.3MB"), std::string::npos) << r.output;
  EXPECT_TRUE(dir.entries().empty());
}

TEST(MixedConvert, ProtectAndFastProxy) {
  ScratchDir dir;
  const auto out = dir / "out";
  ASSERT_EQ(run_optiq(convert(out)).exit_code, 0);
  auto r = run_optiq(convert(out, " --sensitivity fast --protect attn_v=Q8_0"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Spearman rho = "), std::string::npos) << r.output;
  const auto report = nlohmann::json::parse(read_text(out / "optiq-report.json"));
  const double rho = report["totals"]["spearman_fast_vs_exact"].get<double>();
  EXPECT_GT(rho, 0.5) << "the proxy should rank like the measured KL";
  for (const auto& t : report["tensors"])
    if (t["name"].get<std::string>().find("attn_v") != std::string::npos) EXPECT_EQ(t["chosen"], "q8_0") << t["name"];
}

TEST(MixedConvert, BaselinesAreWrittenAndMeasured) {
  ScratchDir dir;
  const auto out = dir / "out";
  auto r = run_optiq(convert(out, " --baselines"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(read_text(out / "optiq-report.json"));
  size_t files = 0;
  for (const auto& a : report["alternatives"]) {
    if (a["file"].get<std::string>().empty()) continue;
    ++files;
    EXPECT_TRUE(std::filesystem::exists(out / a["file"].get<std::string>())) << a["file"];
    EXPECT_GT(a["measured_kl"].get<double>(), 0.0) << a["file"];
  }
  EXPECT_EQ(files, 2u) << r.output;
  EXPECT_NE(r.output.find("baseline-uniform-"), std::string::npos) << r.output;
}

// A quantized source (stories260K as Q8_0) converted at its own size: every tensor can keep its
// type, and then keeps its bytes; the measured KL of keeping them is only the activation rounding
// of running Q8_0 instead of the f32 reference, far below requantizing to the requested type.
TEST(MixedConvert, AQuantizedSourceKeepsItsOwnTypeAndBytes) {
  ScratchDir dir;
  const auto q8 = dir / "q8_0.gguf";
  ASSERT_EQ(run_optiq("quantize " + test::stories260k().string() + " -o " + q8.string() + " --type Q8_0").exit_code, 0);
  const auto out = dir / "out";
  auto r = run_optiq("convert " + q8.string() + " -o " + out.string() + kQuick +
                     " --n-calibration 2 --candidate-bits 4 --target-size Q8_0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = nlohmann::json::parse(read_text(out / "optiq-report.json"));
  EXPECT_TRUE(report["options"]["keep_stored"].get<bool>());
  const ModelSource source = open_model_source(q8);
  const ModelSource written = open_model_source(out / "llama-optiq.gguf");
  size_t kept = 0;
  for (const auto& t : report["tensors"]) {
    const std::string name = t["name"];
    const auto& kl = t["kl"];
    if (!kl.contains("q8_0")) continue;
    ASSERT_TRUE(kl.contains("q5_0")) << name;
    EXPECT_LT(kl["q8_0"].get<double>(), 0.1 * kl["q5_0"].get<double>()) << name;
    EXPECT_EQ(t["chosen"], "q8_0") << name;
    EXPECT_TRUE(t["kept_stored_bytes"].get<bool>()) << name;
    const auto a = source.find(name)->data, b = written.find(name)->data;
    ASSERT_EQ(a.size(), b.size()) << name;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << name;
    ++kept;
  }
  EXPECT_EQ(kept, 32u);  // the 64-wide matrices: 5 layers × 6, token_embd and output
}

TEST(MixedConvert, BadMixesNameTheLine) {
  ScratchDir dir;
  test::write_text(dir / "bad.jsonl", "{\"domain\": \"prose\", \"text\": \"fine\"}\n{not json\n");
  auto r = run_optiq(convert(dir / "out", " --calibration-mix " + (dir / "bad.jsonl").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("line 2"), std::string::npos) << r.output;
  test::write_text(dir / "shape.jsonl", "{\"domain\": \"prose\", \"prompt\": \"no text or messages\"}\n");
  auto s = run_optiq(convert(dir / "out", " --calibration-mix " + (dir / "shape.jsonl").string()));
  EXPECT_EQ(s.exit_code, 2);
  EXPECT_NE(s.output.find("line 1"), std::string::npos) << s.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "llama-optiq.gguf"));
}

}  // namespace
}  // namespace optiq
