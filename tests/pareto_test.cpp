// `optiq pareto` on stories260K after a tiny `optiq convert`: the sweep's files and outputs,
// resuming (points whose file and plan are unchanged are not measured again), the held-out text
// (byte for byte bench/convert_results.py's), and the errors for a missing, foreign or
// incomplete sensitivity checkpoint.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "eval/held_out_text.h"
#include "eval/line_plot_svg.h"
#include "test_util.h"

namespace optiq {
namespace {

using test::read_text;
using test::run_optiq;
using test::ScratchDir;

// One convert run shared by the tests (3 sequences of 64 tokens, candidates Q4_K and Q8_0,
// which stories260K's 64-wide rows turn into Q5_0 and Q8_0).
class Pareto : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir;
    const auto r = run_optiq("convert " + test::stories260k().string() + " -o " + convert_dir().string() +
                             " --seq-len 64 --n-calibration 3 --n-held-out 1 -t 1");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::filesystem::path convert_dir() { return *dir_ / "convert"; }
  static std::string pareto(const std::filesystem::path& out, const std::string& extra = "", int chunks = 2) {
    return "pareto " + test::stories260k().string() + " -o " + out.string() + " --sensitivity-from " + convert_dir().string() +
           " -c 128 --chunks " + std::to_string(chunks) + " -t 1" + extra;
  }
  static ScratchDir* dir_;
};
ScratchDir* Pareto::dir_ = nullptr;

// stories260K's candidates make files of 7.54 to 9.97 bpw (its norms are f32, ffn_down's 172-wide
// rows fall back to F16): 30 is out of reach.
const std::string kSweep = " --bpw 8,9,30 --recipes Q4_K_M,Q8_0 --uniform Q4_0";

TEST_F(Pareto, SweepsMeasuresAndWritesTableJsonMarkdownAndSvg) {
  ScratchDir dir;
  const auto out = dir / "p";
  const auto r = run_optiq(pareto(out, kSweep));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"optiq 8", "optiq 9", "Q4_K_M", "Q8_0", "uniform Q4_0", "skipped 30 bpw"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  const auto j = nlohmann::json::parse(read_text(out / "pareto.json"));
  ASSERT_EQ(j["points"].size(), 5u);
  EXPECT_EQ(j["skipped"].size(), 1u);
  std::map<std::string, nlohmann::json> by_label;
  for (const auto& p : j["points"]) {
    by_label[p["label"].get<std::string>()] = p;
    EXPECT_TRUE(std::filesystem::exists(out / p["file"].get<std::string>())) << p;
    EXPECT_GT(p["kld"].get<double>(), 0.0) << p;
    EXPECT_GT(p["ppl"].get<double>(), 1.0) << p;
    // The size the point claims is the file's.
    const auto info = run_optiq("info --json " + (out / p["file"].get<std::string>()).string());
    ASSERT_EQ(info.exit_code, 0);
    EXPECT_NEAR(nlohmann::json::parse(info.output)["bits_per_weight"].get<double>(), p["bpw"].get<double>(), 1e-9);
  }
  // Each allocation fits its target, and a larger budget predicts no more KL.
  EXPECT_LE(by_label["optiq 8"]["bpw"].get<double>(), 8.0);
  EXPECT_LE(by_label["optiq 9"]["bpw"].get<double>(), 9.0);
  EXPECT_GT(by_label["optiq 9"]["bpw"].get<double>(), by_label["optiq 8"]["bpw"].get<double>());
  EXPECT_LE(by_label["optiq 9"]["predicted_kl"].get<double>(), by_label["optiq 8"]["predicted_kl"].get<double>());
  // 8-bit weights lose less than the 4-bit recipe, and perplexity stays near the reference's.
  EXPECT_LT(by_label["Q8_0"]["kld"].get<double>(), by_label["Q4_K_M"]["kld"].get<double>());
  EXPECT_NEAR(by_label["Q8_0"]["ppl"].get<double>(), j["reference_ppl"].get<double>(), 0.05 * j["reference_ppl"].get<double>());

  const std::string md = read_text(out / "pareto.md");
  EXPECT_NE(md.find("| optiq 9 |"), std::string::npos) << md;
  const std::string svg = read_text(out / "pareto.svg");
  EXPECT_TRUE(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_TRUE(svg.ends_with("</svg>\n"));
  EXPECT_NE(svg.find("<polyline"), std::string::npos);  // optiq's curve
  EXPECT_NE(svg.find(">Q4_K_M</text>"), std::string::npos);
}

TEST_F(Pareto, ResumesWithoutMeasuringUnchangedPointsAgain) {
  ScratchDir dir;
  const auto out = dir / "p";
  ASSERT_EQ(run_optiq(pareto(out, kSweep)).exit_code, 0);
  const auto first = nlohmann::json::parse(read_text(out / "pareto.json"));
  std::filesystem::remove(out / "recipe-Q8_0.gguf");
  const auto r = run_optiq(pareto(out, kSweep));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto second = nlohmann::json::parse(read_text(out / "pareto.json"));
  size_t reused = 0;
  for (size_t pos = r.output.find("(reused)"); pos != std::string::npos; pos = r.output.find("(reused)", pos + 1)) ++reused;
  EXPECT_EQ(reused, 4u) << r.output;  // all but the deleted file
  EXPECT_NE(r.output.find("[4/5] Q8_0"), std::string::npos) << r.output;
  ASSERT_EQ(first["points"].size(), second["points"].size());
  for (size_t i = 0; i < first["points"].size(); ++i) {
    EXPECT_EQ(first["points"][i]["sha256"], second["points"][i]["sha256"]);
    EXPECT_DOUBLE_EQ(first["points"][i]["kld"].get<double>(), second["points"][i]["kld"].get<double>());
  }
  // Another evaluation (more chunks) measures every point again.
  const auto again = run_optiq(pareto(out, kSweep, 3));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(again.output.find("(reused)"), std::string::npos) << again.output;
}

TEST_F(Pareto, MissingForeignOrIncompleteSensitivityIsAnInputError) {
  ScratchDir dir;
  auto r = run_optiq("pareto " + test::stories260k().string() + " -o " + (dir / "p").string() + " --sensitivity-from " +
                     (dir / "nothing").string() + " --bpw 6");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("has no sensitivity.jsonl"), std::string::npos) << r.output;

  // The same measurements, with the header of another model.
  const auto foreign = dir / "foreign";
  std::filesystem::create_directories(foreign);
  std::filesystem::copy(convert_dir(), foreign, std::filesystem::copy_options::recursive);
  std::string text = read_text(foreign / "sensitivity.jsonl");
  const size_t at = text.find("\"model\":\"") + 9;
  text[at] = text[at] == '0' ? '1' : '0';
  test::write_text(foreign / "sensitivity.jsonl", text);
  r = run_optiq("pareto " + test::stories260k().string() + " -o " + (dir / "p").string() + " --sensitivity-from " +
                foreign.string() + " --bpw 6");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("was measured for another model"), std::string::npos) << r.output;

  // Q4_0 was never measured.
  r = run_optiq(pareto(dir / "p", " --bpw 6 --candidate-types Q4_0,Q8_0"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("does not cover the candidates"), std::string::npos) << r.output;
}

TEST(ParetoText, HeldOutTextIsConvertResultsPys) {
  ScratchDir dir;
  // OPTIQ_SHARED_DIR is "<source dir>/../shared".
  const std::string shared = OPTIQ_SHARED_DIR;
  const std::filesystem::path bench = std::filesystem::path(shared.substr(0, shared.size() - std::string("/../shared").size())) / "bench";
  const auto path = dir / "held-out.txt";
  const std::string cmd = "python3 -c \"import sys; from pathlib import Path; "
                          "sys.path.insert(0, '" + bench.string() +
                          "'); import convert_results as c; c.SHARED = Path('" + test::shared_dir().string() +
                          "'); c.held_out_text(Path('" + path.string() + "'))\"";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const std::string theirs = read_text(path);
  ASSERT_GT(theirs.size(), 10000u);
  EXPECT_EQ(eval::held_out_text(test::shared_dir()), theirs);
}

TEST(ParetoPlot, LogAxisPlacesDecadesAndLeavesOutNonPositiveValues) {
  eval::LinePlot plot;
  plot.log_y = true;
  plot.series.push_back({"a", "#000000", true, {{3, 0.1, ""}, {5, 0.001, ""}, {4, 0.0, "zero"}}});
  const std::string svg = eval::line_plot_svg(plot);
  for (const char* tick : {">0.001</text>", ">0.01</text>", ">0.1</text>"}) EXPECT_NE(svg.find(tick), std::string::npos) << tick;
  EXPECT_EQ(svg.find("zero"), std::string::npos);  // log(0) is not drawn
  size_t circles = 0;
  for (size_t pos = svg.find("<circle"); pos != std::string::npos; pos = svg.find("<circle", pos + 1)) ++circles;
  EXPECT_EQ(circles, 3u);  // two points and the legend marker
}

}  // namespace
}  // namespace optiq
