// `optiq eval` end to end on stories260K (a tiny model: the scores are near zero, the test
// checks that every task runs, writes the JSON it promises and reports bad input clearly).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "test_util.h"

namespace optiq {
namespace {

using nlohmann::json;

std::string data(const std::string& rel) { return (test::shared_dir() / "data" / rel).string(); }

json run_eval(const test::ScratchDir& dir, const std::string& args) {
  const std::string out = (dir / "eval.json").string();
  const auto r = test::run_optiq("eval " + test::stories260k().string() + " -t 1 --json " + out + " " + args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(out);
  if (!in) return json();
  return json::parse(in);
}

// The fields every task's result has, its primary metric in [lo, hi], and n samples.
void check_task(const json& j, const std::string& task, size_t n_samples, double lo = 0, double hi = 1) {
  ASSERT_TRUE(j["results"].contains(task)) << j.dump().substr(0, 500);
  const json& t = j["results"][task];
  const std::string primary = t["primary"];
  ASSERT_TRUE(t["metrics"].contains(primary));
  EXPECT_GE(t["metrics"][primary].get<double>(), lo) << task;
  EXPECT_LE(t["metrics"][primary].get<double>(), hi) << task;
  EXPECT_EQ(t["samples"].size(), n_samples) << task;
  for (const json& s : t["samples"]) {
    EXPECT_TRUE(s.contains("prompt") || task == "ppl") << task;
    EXPECT_TRUE(s.contains("output")) << task;
  }
  EXPECT_GE(t["wall_seconds"].get<double>(), 0.0);
}

TEST(EvalCli, GenerationAndChoiceTasks) {
  test::ScratchDir dir;
  json j = run_eval(dir, "--task gsm8k --data " + data("gsm8k/train.jsonl") + " --shots 2 --n-samples 2");
  check_task(j, "gsm8k", 2);
  EXPECT_EQ(j["results"]["gsm8k"]["samples"][0]["index"], 2);  // exemplars 0, 1 left out
  EXPECT_TRUE(j["results"]["gsm8k"]["samples"][0]["prompt"].get<std::string>().starts_with("Question: Natalia"));

  j = run_eval(dir, "--task mmlu --data " + data("mmlu/dev") + " --n-samples 3");
  check_task(j, "mmlu", 3);
  EXPECT_EQ(j["results"]["mmlu"]["details"]["per_subject"].size(), 3u);  // round robin over subjects
  EXPECT_EQ(j["results"]["mmlu"]["samples"][0]["n_shots"], 4);           // leave-one-out of 5 dev questions
  EXPECT_EQ(j["results"]["mmlu"]["samples"][0]["logprobs"].size(), 4u);

  j = run_eval(dir, "--task humaneval --data " + data("humaneval/HumanEval-first40.jsonl.gz") + " --n-samples 2");
  check_task(j, "humaneval", 2);
  EXPECT_FALSE(j["results"]["humaneval"]["details"]["sandbox"].get<std::string>().empty());

  j = run_eval(dir, "--task ifeval --no-chat --data " + data("ifeval/input_data-first120.jsonl") + " --n-samples 2");
  check_task(j, "ifeval", 2);
  EXPECT_EQ(j["results"]["ifeval"]["samples"][0]["strict"].size(), 3u);  // key 1000 has three instructions

  j = run_eval(dir, "--task bfcl --no-chat --data " + data("bfcl/BFCL_v3_simple-first100.json") + " --n-samples 2");
  check_task(j, "bfcl", 2);
}

TEST(EvalCli, ContextTasksPerplexityAndBaseline) {
  test::ScratchDir dir;
  json j = run_eval(dir, "--task hashhop --lengths 96 --hops 1,2 --n-samples 1");
  check_task(j, "hashhop", 2);
  EXPECT_EQ(j["results"]["hashhop"]["details"]["by_length_and_hops"].size(), 2u);
  for (const json& s : j["results"]["hashhop"]["samples"]) EXPECT_LE(s["n_tokens"].get<int>(), 200);

  j = run_eval(dir, "--task needle --lengths 64,128 --depths 0,1 --svg " + (dir / "needle.svg").string());
  check_task(j, "needle", 4);
  EXPECT_EQ(j["results"]["needle"]["details"]["heatmap"]["accuracy"].size(), 2u);
  std::ifstream svg_in(dir / "needle.svg");
  const std::string svg((std::istreambuf_iterator<char>(svg_in)), std::istreambuf_iterator<char>());
  EXPECT_TRUE(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  size_t cells = 0;
  for (size_t p = svg.find("<rect x="); p != std::string::npos; p = svg.find("<rect x=", p + 1)) ++cells;
  EXPECT_EQ(cells, 4u);  // 2 lengths x 2 depths

  std::string text;
  for (int i = 0; i < 40; ++i) text += "Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog. ";
  test::write_text(dir / "text.txt", text);
  j = run_eval(dir, "--task ppl -c 64 --n-samples 3 --data " + (dir / "text.txt").string());
  ASSERT_TRUE(j["results"].contains("ppl"));
  EXPECT_GT(j["results"]["ppl"]["metrics"]["ppl"].get<double>(), 1.0);
  EXPECT_EQ(j["results"]["ppl"]["metrics"]["n_chunks"], 3);

  // The model against itself: no divergence, and a Δ of zero in the table.
  j = run_eval(dir, "--task kld -c 64 --n-samples 2 --data " + (dir / "text.txt").string() + " --baseline " +
                        test::stories260k().string());
  EXPECT_NEAR(j["results"]["kld"]["metrics"]["kld_mean"].get<double>(), 0.0, 1e-5);
  EXPECT_DOUBLE_EQ(j["results"]["kld"]["metrics"]["same_top"].get<double>(), 1.0);

  const auto table = test::run_optiq("eval " + test::stories260k().string() + " -t 1 --task needle --lengths 64 --depths 0.5 --baseline " +
                                     test::stories260k().string());
  EXPECT_EQ(table.exit_code, 0) << table.output;
  EXPECT_NE(table.output.find("| metric | model | baseline | Δ |"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("| needle.accuracy |"), std::string::npos) << table.output;
}

TEST(EvalCli, BadInputIsOneClearError) {
  test::ScratchDir dir;
  const std::string model = test::stories260k().string();
  auto r = test::run_optiq("eval " + model + " --task nonsense --data x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown task"), std::string::npos) << r.output;
  r = test::run_optiq("eval " + model + " --task gsm8k --data " + (dir / "missing.jsonl").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("no such file"), std::string::npos) << r.output;
  test::write_text(dir / "bad.jsonl", "{\"question\": \"q\", \"answer\": \"#### 1\"}\n\n{not json\n");
  r = test::run_optiq("eval " + model + " --task gsm8k --shots 0 --data " + (dir / "bad.jsonl").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("line 3"), std::string::npos) << r.output;
  r = test::run_optiq("eval " + model + " --task gsm8k");
  EXPECT_EQ(r.exit_code, 2);
  r = test::run_optiq("eval " + model + " --task kld --data " + (dir / "bad.jsonl").string());
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--baseline"), std::string::npos) << r.output;
  r = test::run_optiq("eval " + model + " --task ifeval --n-samples 1 --data " + data("ifeval/input_data-first120.jsonl"));
  EXPECT_EQ(r.exit_code, 2);  // stories260K has no chat template: one clear error
  EXPECT_NE(r.output.find("--no-chat"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace optiq
