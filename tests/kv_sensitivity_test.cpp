// `optiq kv-cache`: per-layer K/V sensitivity (re-running from a layer equals a whole forward
// pass with that layer's cache quantized; an f32 candidate measures 0), the knapsack's bits
// target, resuming without measuring twice, the written kv_config.json, and option errors.
// stories260K's heads are 8 wide, too narrow for 32-value blocks, so block types run on a tiny
// in-memory model with 64-wide heads and stories260K uses f32/f16 only.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>

#include "engine/kv_config.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "kv/kv_allocation.h"
#include "kv/kv_cache_plan.h"
#include "kv/kv_candidates.h"
#include "kv/kv_report.h"
#include "kv/kv_sensitivity.h"
#include "sensitivity/tensor_kl.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace optiq::kv {
namespace {

using engine::KVType;

const std::vector<std::vector<int32_t>> kTinySequences = {
    {1, 5, 9, 17, 3, 22, 8, 31, 2, 11, 4, 39, 12, 6, 30, 21},
    {3, 3, 14, 25, 36, 7, 18, 29, 1, 10, 20, 30, 0, 9, 19, 28},
};

// Mean KL of whole forward passes: F32 cache against `config`.
double full_pass_kl(const engine::Model& m, const engine::KVCacheConfig& config) {
  const int64_t V = m.hp.n_vocab;
  double total = 0;
  int64_t n_pos = 0;
  for (const auto& seq : kTinySequences) {
    const int64_t n = static_cast<int64_t>(seq.size());
    std::vector<float> a(static_cast<size_t>(n * V)), b(a.size());
    engine::KVCache ca = engine::make_kv_cache(m, n), cb = engine::make_kv_cache(m, n, config);
    engine::forward(m, ca, seq, true, a.data());
    engine::forward(m, cb, seq, true, b.data());
    for (int64_t t = 0; t < n; ++t) {
      engine::log_softmax(a.data() + t * V, V, a.data() + t * V);
      engine::log_softmax(b.data() + t * V, V, b.data() + t * V);
      total += sensitivity::kl_divergence(a.data() + t * V, b.data() + t * V, V);
    }
    n_pos += n;
  }
  return total / static_cast<double>(n_pos);
}

TEST(KVSensitivity, ReRunFromTheLayerEqualsAWholePassAndFewerBitsHurtMore) {
  const engine::Model m = test::tiny_llama({.seed = 7});
  const sensitivity::TensorKL kl(m, kTinySequences, /*keep_reference=*/true);
  for (const KVSlot slot : {KVSlot{0, KVPart::K}, KVSlot{1, KVPart::V}, KVSlot{2, KVPart::K}}) {
    SCOPED_TRACE(kv_slot_name(slot));
    const auto q4 = single_slot_config(3, slot, KVType::Q4_0, {});
    const auto q8 = single_slot_config(3, slot, KVType::Q8_0, {});
    const double kl4 = kl.measure_kv_cache(q4, slot.layer), kl8 = kl.measure_kv_cache(q8, slot.layer);
    const double want4 = full_pass_kl(m, q4);
    EXPECT_GT(want4, 1e-6);  // the cache really quantizes
    EXPECT_NEAR(kl4, want4, 1e-7 + 1e-3 * want4);
    EXPECT_GT(kl8, 0.0);
    EXPECT_LT(kl8, kl4);
    // TurboQuant slots too: their rotation is seeded by the layer, their key statistics by the
    // sequence's first 4 positions; codes only, and with f16 rows for the first and the 4
    // newest positions.
    for (engine::TurboF16Rows rows : {engine::TurboF16Rows{0, 0, 4}, engine::TurboF16Rows{1, 4, 4}}) {
      engine::KVCacheConfig storage;
      storage.turbo_f16 = rows;
      const auto tq3 = single_slot_config(3, slot, KVType::TQ3, storage);
      const double want3 = full_pass_kl(m, tq3);
      EXPECT_GT(want3, 1e-6);
      EXPECT_NEAR(kl.measure_kv_cache(tq3, slot.layer), want3, 1e-7 + 1e-3 * want3);
    }
  }
}

// A KL estimate that should be tiny but positive can land a few 1e-9 either side of zero: the
// estimate sum_v p_v (log p_v - log q_v) subtracts float32 log-probabilities whose rounding
// errors reach ~1e-6 (an ulp at |log p| ~ 10), more than the divergence of an f16 cache on
// stories260K. It is never below -kKLRoundoff.
constexpr double kKLRoundoff = 1e-6;

TEST(KVSensitivity, F32CandidateMeasuresZeroOnStories) {
  const engine::Model m = engine::load_model(open_model_source(test::stories260k()));
  const std::vector<std::vector<int32_t>> seqs = {{1, 403, 407, 261, 378, 432, 383, 286, 300, 270, 416, 263}};
  const sensitivity::TensorKL kl(m, seqs, true);
  const int64_t n_layer = m.hp.n_layer;
  for (const KVSlot slot : {KVSlot{0, KVPart::K}, KVSlot{n_layer - 1, KVPart::V}}) {
    EXPECT_EQ(kl.measure_kv_cache(single_slot_config(n_layer, slot, KVType::F32, {}), slot.layer), 0.0);
    EXPECT_GT(kl.measure_kv_cache(single_slot_config(n_layer, slot, KVType::F16, {}), slot.layer), -kKLRoundoff);
  }
}

// A plan over 4 layers of 2 × 64-wide heads with KL falling as bits rise, one key layer 30x
// more sensitive than the rest.
KVPlan synthetic_plan(const std::vector<KVType>& types, double target_bits) {
  KVPlan plan = plan_kv_budget(types, 4, 2, 64, target_bits);
  std::vector<std::vector<double>> kl;
  for (const auto& slot : plan.slots) {
    const double scale = (slot.layer == 2 && slot.part == KVPart::K ? 30.0 : 1.0) * (slot.part == KVPart::V ? 0.5 : 1.0);
    auto& row = kl.emplace_back();
    for (size_t i = 0; i < plan.types.size(); ++i) row.push_back(scale * std::pow(0.1, static_cast<double>(i)) * (1 + 0.01 * slot.layer));
  }
  allocate_kv(plan, kl);
  return plan;
}

TEST(KVAllocation, MeetsTheBitsTargetAndUpgradesTheSensitiveSlotFirst) {
  const std::vector<KVType> types = {KVType::Q8_0, KVType::Q4_0};  // sorted by the plan
  EXPECT_NEAR(kv_bits_per_value(KVType::Q4_0, 2, 64), 4.5, 1e-12);
  EXPECT_NEAR(kv_bits_per_value(KVType::Q8_0, 2, 64), 8.5, 1e-12);
  EXPECT_NEAR(kv_bits_per_value(KVType::F16, 2, 64), 16.0, 1e-12);
  for (double target : {4.5, 5.0, 5.2, 6.5, 8.5}) {
    SCOPED_TRACE(target);
    const KVPlan plan = synthetic_plan(types, target);
    ASSERT_EQ(plan.types.front(), KVType::Q4_0);
    EXPECT_LE(plan.bytes, plan.budget_bytes);
    EXPECT_LE(average_bits(plan, plan.bytes), target + 1e-9);
    // 8 slots of 128 values: one upgrade costs 4 bits × 128 / (8 × 128) = 0.5 average bits,
    // so the plan comes within one upgrade of the target.
    EXPECT_GT(average_bits(plan, plan.bytes), target - 0.5);
    size_t upgrades = 0;
    for (size_t c : plan.chosen) upgrades += c;
    if (upgrades > 0) {
      EXPECT_EQ(plan.chosen[4], 1u) << "blk.2.k, the sensitive slot, goes first";
    }
    EXPECT_LE(plan.predicted, uniform_predicted(plan, 0) + 1e-12);
  }
  // At exactly the smallest candidate's bits everything is the smallest candidate.
  const KVPlan low = synthetic_plan(types, 4.5);
  for (size_t c : low.chosen) EXPECT_EQ(c, 0u);
}

TEST(KVAllocation, TargetOutsideTheCandidatesIsAnError) {
  const std::vector<KVType> types = {KVType::Q4_0, KVType::Q8_0};
  try {
    plan_kv_budget(types, 4, 2, 64, 4.0);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("below"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("4.5"), std::string::npos) << e.what();
  }
  try {
    plan_kv_budget(types, 4, 2, 64, 9.0);
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("above"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("8.5"), std::string::npos) << e.what();
  }
  EXPECT_THROW(plan_kv_budget(types, 4, 2, 8, 6.0), InputError);  // 8-wide heads: no 32-blocks
}

TEST(KVAllocation, WrittenConfigLoadsWithReadKvConfig) {
  const KVPlan plan = synthetic_plan({KVType::Q4_0, KVType::IQ4_NL, KVType::Q8_0}, 5.5);
  test::ScratchDir dir;
  write_file_atomically(dir / "kv_config.json", kv_config_json(plan, {}).dump(2));
  const engine::KVConfigFile file = engine::read_kv_config((dir / "kv_config.json").string(), 4);
  EXPECT_EQ(file.layers, chosen_layer_types(plan));
  EXPECT_FALSE(file.turbo_f16.has_value());  // no TurboQuant type chosen
  // With a TurboQuant type chosen, the rows the measurements used go with it.
  const KVPlan turbo = synthetic_plan({KVType::TQ3, KVType::Q8_0}, 6.0);
  const engine::TurboF16Rows rows{2, 16, 8};
  write_file_atomically(dir / "kv_config.json", kv_config_json(turbo, rows).dump(2));
  EXPECT_EQ(engine::read_kv_config((dir / "kv_config.json").string(), 4).turbo_f16, rows);
  // The report's memory counts what the cache holds beside its rows: each uniform alternative
  // at 4K positions is as many bytes as the engine's caches of that type (4 layers).
  for (const KVAlternative& a : kv_alternatives(turbo, 2, 64, rows)) {
    if (a.label == "mixed") continue;
    size_t want = 0;
    for (int64_t l = 0; l < 4; ++l) {
      const engine::LayerKVCache c(4096, 2, 64, a.layers[0], true, l, rows);
      want += c.k_bytes() + c.v_bytes();
    }
    EXPECT_EQ(a.bytes_at(4096), want) << a.label;
  }
  const auto alternatives = kv_alternatives(plan, 2, 64, {});
  ASSERT_EQ(alternatives.size(), 5u);  // mixed, f16, three uniform
  EXPECT_EQ(alternatives[0].bytes_per_position, plan.bytes);
  EXPECT_EQ(alternatives[1].bytes_per_position, 8u * 128 * 2);
  const auto report = kv_report_json(plan, {}, alternatives);
  EXPECT_EQ(report["layers"].size(), 4u);
  EXPECT_EQ(report["memory"][1]["bytes_at_32k"].get<uint64_t>(), 8ull * 128 * 2 * 32768);
}

TEST(KVCandidates, BitsMapPerKindAndUnknownNamesAreErrors) {
  EXPECT_EQ(kv_candidates_from_bits({4, 8}, {"affine"}), (std::vector<KVType>{KVType::Q4_0, KVType::Q8_0}));
  EXPECT_EQ(kv_candidates_from_bits({5, 16}, {"affine"}), (std::vector<KVType>{KVType::Q5_0, KVType::F16}));
  EXPECT_THROW(kv_candidates_from_bits({7}, {"affine"}), InputError);
  EXPECT_THROW(kv_candidates_from_bits({4}, {"lattice"}), InputError);
  EXPECT_EQ(parse_kv_candidate_types("q4_1,iq4_nl"), (std::vector<KVType>{KVType::Q4_1, KVType::IQ4_NL}));
  EXPECT_THROW(parse_kv_candidate_types("q4_1,,q8_0"), InputError);
  EXPECT_THROW(parse_kv_candidate_types("q4_k"), InputError);
  if (!engine::kv_type_from_name("tq3")) {
    try {
      kv_candidates_from_bits({3, 8}, {"affine", "turbo"});
      FAIL() << "no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("tq3"), std::string::npos) << e.what();
    }
  }
}

KVCacheOptions stories_options(const std::filesystem::path& dir) {
  KVCacheOptions o;
  o.output_dir = dir;
  o.candidates = {KVType::F16, KVType::F32};
  o.target_bits = 24;
  o.calibration.seq_len = 48;
  o.calibration.n_calibration = 2;
  return o;
}

size_t line_count(const std::filesystem::path& p) {
  std::ifstream in(p);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

TEST(KVCachePlan, ResumedRunMeasuresNothingTwiceAndWritesALoadableConfig) {
  test::ScratchDir dir;
  const ModelSource source = open_model_source(test::stories260k());
  const KVCacheOptions o = stories_options(dir.path());
  const KVCacheResult first = plan_kv_cache(source, o);
  const size_t pairs = first.plan.slots.size() * 2;
  EXPECT_EQ(first.info.measured, pairs);
  EXPECT_EQ(first.info.resumed, 0u);
  EXPECT_EQ(line_count(dir / "kv-sensitivity.jsonl"), pairs + 1);  // header + one line each
  // f32 everywhere costs nothing; 24 bits = half the slots at f16. f16 costs almost nothing on
  // this model (see kKLRoundoff): each slot is above -kKLRoundoff, all of them together cost more.
  double f16_total = 0;
  for (const auto& row : first.plan.kl) {
    EXPECT_EQ(row[1], 0.0);
    EXPECT_GT(row[0], -kKLRoundoff);
    f16_total += row[0];
  }
  EXPECT_GT(f16_total, kKLRoundoff);
  EXPECT_NEAR(average_bits(first.plan, first.plan.bytes), 24.0, 1e-9);

  const KVCacheResult again = plan_kv_cache(source, o);
  EXPECT_EQ(again.info.measured, 0u);
  EXPECT_EQ(again.info.resumed, pairs);
  EXPECT_EQ(line_count(dir / "kv-sensitivity.jsonl"), pairs + 1);
  EXPECT_EQ(again.plan.chosen, first.plan.chosen);
  const auto layers = engine::read_kv_config((dir / "kv_config.json").string(), first.plan.slots.size() / 2).layers;
  EXPECT_EQ(layers, chosen_layer_types(first.plan));
  for (const char* f : {"kv-report.json", "kv-sensitivity.svg"}) EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;

  // The written config runs: perplexity with it reports the chosen f16 cache.
  const auto text = dir / "story.txt";
  std::string story;
  for (int i = 0; i < 20; ++i) story += "Once upon a time, there was a little girl named Lily. She loved to play outside. ";
  test::write_text(text, story);
  const auto ppl = test::run_optiq("perplexity " + test::stories260k().string() + " -f " + text.string() +
                                   " -c 64 --chunks 1 --kv-config " + (dir / "kv_config.json").string());
  EXPECT_EQ(ppl.exit_code, 0) << ppl.output;
  EXPECT_NE(ppl.output.find("f16"), std::string::npos) << ppl.output;
}

TEST(KVCacheCli, WritesTheConfigReportAndPlot) {
  test::ScratchDir dir;
  const auto r = test::run_optiq("kv-cache " + test::stories260k().string() + " -o " + dir.path().string() +
                                 " --candidate-types f16,f32 --target-bits 19.2 --seq-len 32 --n-calibration 1 -t 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("most sensitive keys: blk."), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("target 19.2 bits per cached value; chosen 19.2 bits"), std::string::npos) << r.output;
  for (const char* f : {"kv_config.json", "kv-report.json", "kv-sensitivity.svg", "kv-sensitivity.jsonl"})
    EXPECT_TRUE(std::filesystem::exists(dir / f)) << f;
  std::ifstream in(dir / "kv-sensitivity.svg");
  const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(KVCacheCli, BadOptionsExitWithTwoAndSayWhy) {
  test::ScratchDir dir;
  const std::string model = test::stories260k().string() + " -o " + dir.path().string() + " ";
  const std::pair<std::string, std::string> cases[] = {
      {"--candidate-bits 4,8", "blocks of 32"},  // stories' heads are 8 wide
      {"--candidate-bits 4,7", "7 bits"},
      {"--kinds lattice", "lattice"},
      {"--candidate-types f16,q9_0", "q9_0"},
      {"--candidate-types f16,f32 --target-bits 40", "above"},
      {"--candidate-types f16,f32 --target-bits 8", "below"},
      {"--candidate-types f16,f32 --target-bits 20 --seq-len 100000", "trained context"},
  };
  for (const auto& [args, message] : cases) {
    const auto r = test::run_optiq("kv-cache " + model + args);
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(message), std::string::npos) << args << "\n" << r.output;
  }
  if (!engine::kv_type_from_name("tq4")) {
    const auto r = test::run_optiq("kv-cache " + model + "--kinds affine,turbo --candidate-bits 4");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("tq4"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace optiq::kv
