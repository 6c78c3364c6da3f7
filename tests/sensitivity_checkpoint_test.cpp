// The convert checkpoint: measurements survive a reopen, a torn last line is cut off, and a
// header from another run is moved aside with the reason.
#include <gtest/gtest.h>

#include <fstream>

#include "sensitivity/checkpoint.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq::sensitivity {
namespace {

using test::read_text;

const nlohmann::json kHeader = {{"format", "optiq-sensitivity"}, {"model", "abc"}, {"calibration_tokens", "def"}};

TEST(SensitivityCheckpoint, ResumesWhatWasRecorded) {
  test::ScratchDir dir;
  const auto path = dir / "s.jsonl";
  {
    SensitivityCheckpoint cp(path, kHeader, false);
    EXPECT_EQ(cp.n_resumed(), 0u);
    cp.add("blk.0.attn_q.weight", GgmlType::Q4_K, 0.125, 1.5);
    cp.add("blk.0.attn_q.weight", GgmlType::Q8_0, 1.0 / 3.0, 2.0);
  }
  SensitivityCheckpoint again(path, kHeader, false);
  EXPECT_EQ(again.n_resumed(), 2u);
  EXPECT_TRUE(again.invalidated().empty());
  EXPECT_EQ(again.find("blk.0.attn_q.weight", GgmlType::Q8_0).value(), 1.0 / 3.0);  // exact round trip
  EXPECT_DOUBLE_EQ(again.resumed_seconds(), 3.5);
  EXPECT_FALSE(again.find("blk.0.attn_q.weight", GgmlType::Q5_0));
}

TEST(SensitivityCheckpoint, FreeTypeNamesRoundTripBesideGgmlTypes) {
  test::ScratchDir dir;
  const auto path = dir / "s.jsonl";
  {
    SensitivityCheckpoint cp(path, kHeader, false);
    cp.add("blk.3.k", "tq3", 0.25, 1);  // a name ggml does not have (a KV cache type)
    cp.add("blk.3.k", GgmlType::Q8_0, 0.5, 1);
  }
  SensitivityCheckpoint again(path, kHeader, false);
  EXPECT_EQ(again.n_resumed(), 2u);
  EXPECT_EQ(again.find("blk.3.k", "tq3").value(), 0.25);
  EXPECT_EQ(again.find("blk.3.k", GgmlType::Q8_0).value(), 0.5);
  EXPECT_EQ(again.find("blk.3.k", std::string(ggml_type_name(GgmlType::Q8_0))).value(), 0.5);
  EXPECT_FALSE(again.find("blk.3.v", "tq3"));
}

TEST(SensitivityCheckpoint, TornLastLineIsCutOff) {
  test::ScratchDir dir;
  const auto path = dir / "s.jsonl";
  {
    SensitivityCheckpoint cp(path, kHeader, false);
    cp.add("a.weight", GgmlType::Q4_K, 0.5, 1);
  }
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << R"({"tensor": "b.weight", "ty)";  // killed mid-write
  }
  {
    SensitivityCheckpoint cp(path, kHeader, false);
    EXPECT_EQ(cp.n_resumed(), 1u);
    cp.add("b.weight", GgmlType::Q8_0, 0.25, 1);
  }
  const std::string text = read_text(path);
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
  SensitivityCheckpoint cp(path, kHeader, false);
  EXPECT_EQ(cp.n_resumed(), 2u);
}

TEST(SensitivityCheckpoint, OtherRunIsMovedAsideWithTheReason) {
  test::ScratchDir dir;
  const auto path = dir / "s.jsonl";
  {
    SensitivityCheckpoint cp(path, kHeader, false);
    cp.add("a.weight", GgmlType::Q4_K, 0.5, 1);
  }
  nlohmann::json other = kHeader;
  other["calibration_tokens"] = "xyz";
  {
    SensitivityCheckpoint ro(path, other, /*read_only=*/true);
    EXPECT_NE(ro.invalidated().find("'calibration_tokens' differs"), std::string::npos) << ro.invalidated();
    EXPECT_FALSE(std::filesystem::exists(dir / "s.jsonl.stale")) << "read-only must not move files";
  }
  SensitivityCheckpoint cp(path, other, false);
  EXPECT_EQ(cp.n_resumed(), 0u);
  EXPECT_FALSE(cp.find("a.weight", GgmlType::Q4_K));
  EXPECT_TRUE(std::filesystem::exists(dir / "s.jsonl.stale"));
  EXPECT_EQ(read_text(path), other.dump() + "\n");
}

TEST(SensitivityCheckpoint, ReadOnlyCreatesNothing) {
  test::ScratchDir dir;
  SensitivityCheckpoint cp(dir / "s.jsonl", kHeader, true);
  cp.add("a.weight", GgmlType::Q4_K, 0.5, 1);
  EXPECT_EQ(cp.find("a.weight", GgmlType::Q4_K).value(), 0.5);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(SensitivityCheckpoint, GarbageLineIsAnInputError) {
  test::ScratchDir dir;
  const auto path = dir / "s.jsonl";
  test::write_text(path, kHeader.dump() + "\n{\"tensor\": 3}\n");
  EXPECT_THROW(SensitivityCheckpoint(path, kHeader, false), InputError);
}

}  // namespace
}  // namespace optiq::sensitivity
