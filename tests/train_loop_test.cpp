// The training loop: AdamW and the schedules against their formulas, a tiny model learning a
// repeated sequence, and a run resumed from its state file ending bit for bit where an
// uninterrupted run ends.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numbers>

#include "test_util.h"
#include "tiny_llama.h"
#include "train/adamw.h"
#include "train/train_state.h"
#include "train/trainer.h"
#include "util/error.h"

namespace optiq::train {
namespace {

TEST(TrainLoop, AdamWFollowsItsFormula) {
  const AdamWOptions opt{0.9, 0.99, 1e-8, 0.1};
  std::vector<float> p = {1.0f, -2.0f, 0.5f}, m(3, 0.0f), v(3, 0.0f);
  const std::vector<float> g1 = {0.5f, -1.0f, 0.0f}, g2 = {0.25f, 2.0f, -1.0f};
  std::vector<double> pd(p.begin(), p.end()), md(3, 0), vd(3, 0);
  for (int step = 1; step <= 2; ++step) {
    const auto& g = step == 1 ? g1 : g2;
    adamw_update(opt, 0.01, step, p, g, m, v);
    for (size_t i = 0; i < 3; ++i) {
      md[i] = 0.9 * md[i] + 0.1 * g[i];
      vd[i] = 0.99 * vd[i] + 0.01 * g[i] * g[i];
      const double mh = md[i] / (1 - std::pow(0.9, step)), vh = vd[i] / (1 - std::pow(0.99, step));
      pd[i] -= 0.01 * (0.1 * pd[i] + mh / (std::sqrt(vh) + 1e-8));
      EXPECT_NEAR(p[i], pd[i], 1e-6) << "step " << step << " element " << i;
    }
  }
}

TEST(TrainLoop, LearningRateSchedules) {
  EXPECT_DOUBLE_EQ(learning_rate(LrSchedule::Constant, 1e-3, 0, 5, 10), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(LrSchedule::Constant, 1e-3, 4, 0, 10), 0.25e-3);  // warm-up from lr / warmup
  EXPECT_DOUBLE_EQ(learning_rate(LrSchedule::Constant, 1e-3, 4, 3, 10), 1e-3);
  EXPECT_DOUBLE_EQ(learning_rate(LrSchedule::Cosine, 1e-3, 2, 2, 12), 1e-3);         // the peak after warm-up
  EXPECT_NEAR(learning_rate(LrSchedule::Cosine, 1e-3, 2, 7, 12), 0.5e-3, 1e-15);      // half way
  EXPECT_NEAR(learning_rate(LrSchedule::Cosine, 1e-3, 0, 9, 10), 1e-3 * 0.5 * (1 + std::cos(std::numbers::pi * 0.9)), 1e-15);
  EXPECT_EQ(parse_lr_schedule("cosine"), LrSchedule::Cosine);
  EXPECT_FALSE(parse_lr_schedule("linear"));
}

// tiny_llama in Q8_0 and a few short sequences the adapter should learn.
struct TinySetup {
  engine::Model model;
  std::vector<Example> train, valid;
  std::vector<AdapterEntry> entries;

  TinySetup() {
    test::TinyLlamaShape shape;
    shape.weight_type = GgmlType::Q8_0;
    model = test::tiny_llama(shape);
    for (int i = 0; i < 6; ++i) {
      Example e;
      for (int t = 0; t < 12; ++t) e.tokens.push_back((t * 7 + i) % 40);
      e.n_prompt = 3;  // the first three tokens are a prompt
      e.line = i + 1;
      (i < 5 ? train : valid).push_back(e);
    }
    for (int64_t il = 0; il < model.hp.n_layer; ++il)
      for (Module m : {Module::Q, Module::V, Module::Down}) entries.push_back({il, m, 4});
  }
};

TrainOptions small_options(int64_t iters) {
  TrainOptions o;
  o.iters = iters;
  o.batch_size = 2;
  o.grad_accum = 2;
  o.lr = 5e-3;
  o.save_every = 2;
  o.eval_every = 3;
  o.report = false;
  o.seed = 7;
  return o;
}

TEST(TrainLoop, TinyModelLearnsItsSequences) {
  const TinySetup s;
  const test::ScratchDir dir;
  auto adapter = init_adapter(s.model, s.entries, 8.0, 4, 7);
  for (const auto& f : adapter) {
    EXPECT_EQ(f.shape.scale, 2.0f);
    for (float b : f.b) ASSERT_EQ(b, 0.0f) << "B starts at zero: training starts from the base";
  }
  const double before = mean_loss(s.model, adapter, s.train, 2);
  const double valid_before = mean_loss(s.model, adapter, s.valid, 2);
  const TrainRecord r = train_adapter(s.model, adapter, s.train, s.valid, small_options(24), dir / "state", "fp");
  const double after = mean_loss(s.model, adapter, s.train, 2);
  EXPECT_EQ(r.valid_curve.front().loss, valid_before);
  EXPECT_EQ(r.steps, 24);
  EXPECT_EQ(r.train_curve.size(), 24u);
  EXPECT_EQ(r.valid_curve.front().step, 0);
  EXPECT_EQ(r.valid_curve.back().step, 24);
  EXPECT_LT(after, 0.7 * before) << "before " << before << ", after " << after;
  // Trained tokens: each example scores 12 - 3 tokens, four examples a step.
  EXPECT_EQ(r.train_curve.front().tokens, 4 * 9);
  EXPECT_EQ(r.train_curve.back().tokens, 24 * 4 * 9);
}

TEST(TrainLoop, ResumedRunEqualsUninterruptedRun) {
  const TinySetup s;
  const test::ScratchDir dir;
  auto straight = init_adapter(s.model, s.entries, 8.0, 4, 7);
  const TrainRecord full = train_adapter(s.model, straight, s.train, s.valid, small_options(7), dir / "a", "fp");
  // The same run stopped after four steps (its state saved at step 4), then continued.
  auto resumed = init_adapter(s.model, s.entries, 8.0, 4, 7);
  train_adapter(s.model, resumed, s.train, s.valid, small_options(4), dir / "b", "fp");
  auto fresh = init_adapter(s.model, s.entries, 8.0, 4, 7);  // what a new process starts from
  const TrainRecord tail = train_adapter(s.model, fresh, s.train, s.valid, small_options(7), dir / "b", "fp");
  EXPECT_EQ(tail.resumed_from, 4);
  for (size_t i = 0; i < straight.size(); ++i) {
    EXPECT_EQ(straight[i].a, fresh[i].a) << i;
    EXPECT_EQ(straight[i].b, fresh[i].b) << i;
  }
  ASSERT_EQ(tail.train_curve.size(), full.train_curve.size());
  for (size_t i = 0; i < full.train_curve.size(); ++i) EXPECT_EQ(tail.train_curve[i].loss, full.train_curve[i].loss);
  // A state of another run is refused, not silently reused.
  auto other = init_adapter(s.model, s.entries, 8.0, 4, 7);
  EXPECT_THROW(train_adapter(s.model, other, s.train, s.valid, small_options(7), dir / "b", "another"), InputError);
}

}  // namespace
}  // namespace optiq::train
