// Per-tensor KL measurement on stories260K: re-running from the owning block gives exactly what
// a whole forward pass of the modified model gives, and coarser types do more damage.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/model.h"
#include "quant/quantize.h"
#include "sensitivity/tensor_kl.h"
#include "test_util.h"

namespace optiq::sensitivity {
namespace {

const std::vector<std::vector<int32_t>> kSequences = {
    {1, 403, 407, 261, 378, 432, 383, 286, 300, 270, 416, 263},
    {1, 320, 289, 330, 281, 259, 376, 418, 265, 272},
};

// Mean KL from two whole forward passes: the model as loaded and a copy with one weight changed.
double full_pass_kl(const engine::Model& model, const engine::Model& changed) {
  const int64_t V = model.hp.n_vocab;
  double total = 0;
  int64_t n_pos = 0;
  for (const auto& seq : kSequences) {
    const int64_t n = static_cast<int64_t>(seq.size());
    std::vector<float> a(static_cast<size_t>(n * V)), b(a.size());
    engine::KVCache ca = engine::make_kv_cache(model, 64), cb = engine::make_kv_cache(changed, 64);
    engine::forward(model, ca, seq, true, a.data());
    engine::forward(changed, cb, seq, true, b.data());
    for (int64_t t = 0; t < n; ++t) {
      engine::log_softmax(a.data() + t * V, V, a.data() + t * V);
      engine::log_softmax(b.data() + t * V, V, b.data() + t * V);
      total += kl_divergence(a.data() + t * V, b.data() + t * V, V);
    }
    n_pos += n;
  }
  return total / static_cast<double>(n_pos);
}

TEST(TensorKL, MatchesAWholeForwardPassOfTheModifiedModel) {
  const engine::Model model = engine::load_model(open_model_source(test::stories260k()));
  const TensorKL kept(model, kSequences, /*keep_reference=*/true);
  const TensorKL recomputed(model, kSequences, /*keep_reference=*/false);
  EXPECT_EQ(kept.n_positions(), 22);
  for (const engine::Weight* w : {&model.layers[1].wq, &model.layers[3].ffn_up, &model.output, &model.token_embd}) {
    const engine::Weight q = quantized_copy(*w, GgmlType::Q4_0, nullptr);
    const double kl = kept.measure(*w, q);
    EXPECT_NEAR(recomputed.measure(*w, q), kl, 1e-9) << w->name;
    engine::Model changed = model;
    if (w == &model.token_embd) changed.token_embd = q;
    else if (w == &model.output) changed.output = q;
    else if (w == &model.layers[1].wq) changed.layers[1].wq = q;
    else changed.layers[3].ffn_up = q;
    const double want = full_pass_kl(model, changed);
    EXPECT_GT(want, 1e-6) << w->name;  // Q4_0 really moves the output
    EXPECT_NEAR(kl, want, 1e-6 + 1e-4 * want) << w->name;
  }
  // The weight itself as its replacement: nothing moves.
  EXPECT_NEAR(kept.measure(model.layers[2].wv, model.layers[2].wv), 0.0, 1e-12);
}

TEST(TensorKL, FewerBitsDoMoreDamage) {
  const engine::Model model = engine::load_model(open_model_source(test::stories260k()));
  const TensorKL tkl(model, kSequences, true);
  const engine::Weight& w = model.layers[2].ffn_gate;  // 64 columns: whole Q8_0/Q4_0 blocks
  const double q8 = tkl.measure(w, quantized_copy(w, GgmlType::Q8_0, nullptr));
  const double q5 = tkl.measure(w, quantized_copy(w, GgmlType::Q5_0, nullptr));
  const double q4 = tkl.measure(w, quantized_copy(w, GgmlType::Q4_0, nullptr));
  EXPECT_LT(q8, q5);
  EXPECT_LT(q5, q4);
  EXPECT_GT(q8, 0.0);
  // stories260K's ffn_down rows (172 values) are not whole 32- or 256-blocks.
  EXPECT_THROW(quantized_copy(model.layers[0].ffn_down, GgmlType::Q4_0, nullptr), std::invalid_argument);
}

TEST(TensorKL, KlDivergenceOfKnownDistributions) {
  // P = (1/2, 1/2), Q = (1/4, 3/4): KL = 1/2 ln 2 + 1/2 ln(2/3).
  const float lp[2] = {std::log(0.5f), std::log(0.5f)}, lq[2] = {std::log(0.25f), std::log(0.75f)};
  EXPECT_NEAR(kl_divergence(lp, lq, 2), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-7);
  EXPECT_NEAR(kl_divergence(lp, lp, 2), 0.0, 1e-12);
}

}  // namespace
}  // namespace optiq::sensitivity
