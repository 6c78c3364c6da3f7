// `optiq latency` and `optiq convert --target-tps` on stories260K: a short calibration is saved
// and predicts; a missing calibration is an input error; convert meets a speed target alone and
// together with a size budget, with a latency fit written here so the expected speeds are known.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "engine/model.h"
#include "eval/latency_model.h"
#include "test_util.h"

namespace optiq {
namespace {

using test::read_text;
using test::run_optiq;
using test::ScratchDir;

TEST(LatencyCli, CalibratesSavesAndPredicts) {
  ScratchDir dir;
  const auto cache = dir / "latency.json";
  const std::string model = test::stories260k().string();
  auto r = run_optiq("latency " + model + " --calibrate -t 1 -n 16 -r 1 --types F32,Q8_0,Q4_0 --random-mixes 2 --cache " +
                     cache.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("uniform Q8_0"), std::string::npos) << r.output;
  const auto j = nlohmann::json::parse(read_text(cache));
  ASSERT_EQ(j["entries"].size(), 1u);
  const auto& e = j["entries"].begin().value();
  EXPECT_EQ(e["threads"], 1);
  EXPECT_EQ(e["runs"].size(), 5u);  // 3 uniform + 2 random mixes
  // The fit explains a nonzero decode time. Which coefficients carry it depends on timings (on a
  // loaded machine non-negative least squares may put all of it on F32 or Q4_0 bytes).
  double fitted = e["overhead_seconds"].get<double>();
  for (const auto& [type, cost] : e["seconds_per_byte"].items()) fitted += cost.get<double>();
  EXPECT_GT(fitted, 0.0);

  r = run_optiq("latency " + model + " -t 1 -n 16 -r 1 --uniform Q8_0 --mix Q8_0 --measure --cache " + cache.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mean |error| of predicted tokens/s"), std::string::npos) << r.output;

  // Another thread count has no calibration.
  r = run_optiq("latency " + model + " -t 2 -n 16 --cache " + cache.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("has no calibration"), std::string::npos) << r.output;
  // Q2_K was never calibrated.
  r = run_optiq("latency " + model + " -t 1 -n 16 --uniform Q5_1 --cache " + cache.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("has no cost for"), std::string::npos) << r.output;
}

// A fit with known costs: Q8_0 reads cost 3 ns/byte, Q5_0 1 ns/byte, F16 1 ns/byte, 0.1 ms fixed.
class ConvertTargetTps : public ::testing::Test {
 protected:
  void SetUp() override {
    const engine::Model m = engine::load_model(open_model_source(test::stories260k()));
    eval::LatencyFit fit;
    fit.overhead_seconds = 1e-4;
    fit.seconds_per_byte = {{GgmlType::Q8_0, 3e-9}, {GgmlType::Q5_0, 1e-9}, {GgmlType::F16, 1e-9}, {GgmlType::F32, 1e-9}};
    eval::save_latency_fit(cache(), {eval::cpu_model_name(), 1, eval::model_shape(m.hp), 64}, fit, {});
  }
  std::filesystem::path cache() const { return dir_ / "latency.json"; }
  // Every run writes the same folder, so the sensitivity measured by the first is reused.
  test::CommandResult convert(const std::string& extra) {
    return run_optiq("convert " + test::stories260k().string() + " -o " + (dir_ / "out").string() +
                     " --seq-len 64 --n-calibration 3 --n-held-out 1 -t 1 --latency-cache " + cache().string() + extra);
  }
  nlohmann::json totals() { return nlohmann::json::parse(read_text(dir_ / "out" / "optiq-report.json"))["totals"]; }
  ScratchDir dir_;
};

TEST_F(ConvertTargetTps, MeetsASpeedTargetAloneAndWithASizeBudget) {
  // All Q8_0 is the slowest file these candidates make, all Q5_0 the fastest.
  auto r = convert(" --target-tps 100000");
  EXPECT_EQ(r.exit_code, 2) << r.output;  // faster than any allocation
  r = convert(" --target-tps 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const double slow = totals()["predicted_tps"].get<double>();
  // A target between the slowest and the fastest allocation.
  r = convert(" --target-tps 2000");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto fast = totals();
  EXPECT_GE(fast["predicted_tps"].get<double>(), 2000.0);
  EXPECT_LT(slow, 2000.0) << "the target must bind for this test to mean anything";
  EXPECT_NE(r.output.find("speed: predicted"), std::string::npos) << r.output;
  // With a size budget too: both hold.
  r = convert(" --target-tps 2000 --target-bpw 8.5");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto both = totals();
  EXPECT_GE(both["predicted_tps"].get<double>(), 2000.0);
  EXPECT_LE(both["bpw"].get<double>(), 8.5);
  EXPECT_FALSE(both["speed_method"].get<std::string>().empty());
  // No calibration for this thread count.
  r = convert(" --target-tps 2000 --tps-threads 3");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("has no latency calibration"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace optiq
