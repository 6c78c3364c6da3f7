// The backward passes of the LoRA trainer against central finite differences in f64: every
// operation alone (on random inputs, loss = Σ c·output with random c), and a whole tiny
// model's adapter gradients for each architecture the engine runs.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "quant/float16.h"
#include "tiny_llama.h"
#include "train/grad_ops.h"
#include "train/lora_model.h"

namespace optiq::train {
namespace {

// tiny_llama's seeded normal values, as doubles.
std::vector<double> random_doubles(size_t n, uint32_t seed, double spread = 1.0) {
  const std::vector<float> v = test::random_values(n, seed, static_cast<float>(spread));
  return {v.begin(), v.end()};
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Checks analytic[i] against the central difference of loss() in x[i] for every i (or every
// `stride`-th), relative to the largest gradient's size.
void expect_matches_finite_differences(std::vector<double>& x, const std::vector<double>& analytic,
                                       const std::function<double()>& loss, const char* what, size_t stride = 1) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  double scale = 1e-12;
  for (double g : analytic) scale = std::max(scale, std::abs(g));
  const double h = 1e-5;
  double worst = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    worst = std::max(worst, std::abs((up - down) / (2 * h) - analytic[i]) / scale);
  }
  EXPECT_LT(worst, 1e-6) << what << ": worst error relative to the largest gradient " << scale;
}

TEST(TrainGradients, RmsNorm) {
  const int64_t rows = 3, n = 16;
  auto x = random_doubles(rows * n, 1);
  const auto wd = random_doubles(n, 2);
  const std::vector<float> w(wd.begin(), wd.end());
  const auto c = random_doubles(rows * n, 3);
  auto loss = [&] {
    std::vector<double> y(x.size()), r(rows);
    rms_norm_forward(x.data(), w.data(), rows, n, 1e-5f, y.data(), r.data());
    return dot(y, c);
  };
  std::vector<double> y(x.size()), r(rows), dx(x.size());
  rms_norm_forward(x.data(), w.data(), rows, n, 1e-5f, y.data(), r.data());
  rms_norm_backward(x.data(), w.data(), r.data(), c.data(), rows, n, dx.data());
  expect_matches_finite_differences(x, dx, loss, "rms_norm");
}

TEST(TrainGradients, RopeBothPairings) {
  const int64_t rows = 4, heads = 2, dim = 8;
  const std::vector<int32_t> pos = {0, 3, 7, 100};
  const std::vector<float> factors = {1.0f, 2.0f, 4.0f};
  for (engine::RopeType type : {engine::RopeType::Norm, engine::RopeType::Neox}) {
    const RopeParams p{type, 6, 10000.0f, 0.5f, factors.data()};  // dims 6, 7 pass through
    auto x = random_doubles(rows * heads * dim, 4);
    const auto c = random_doubles(x.size(), 5);
    auto loss = [&] {
      auto y = x;
      rope_rows(p, y.data(), rows, heads, dim, pos.data(), false);
      return dot(y, c);
    };
    auto dx = c;
    rope_rows(p, dx.data(), rows, heads, dim, pos.data(), true);
    expect_matches_finite_differences(x, dx, loss, type == engine::RopeType::Norm ? "rope norm" : "rope neox");
  }
}

TEST(TrainGradients, RopeForwardMatchesEngine) {
  const int64_t heads = 2, dim = 64;
  auto xf = test::random_values(heads * dim, 6);
  std::vector<float> engine_out = xf, train_out = xf;
  const int32_t pos = 37;
  engine::rope(engine::RopeType::Neox, engine_out.data(), heads, dim, dim, pos, 10000.0f, 1.0f, nullptr);
  rope_rows(RopeParams{engine::RopeType::Neox, dim, 10000.0f, 1.0f, nullptr}, train_out.data(), 1, heads, dim, &pos,
            false);
  for (size_t i = 0; i < xf.size(); ++i) EXPECT_NEAR(engine_out[i], train_out[i], 2e-5) << i;
}

TEST(TrainGradients, GatedActivations) {
  const int64_t n = 40;
  for (bool gelu : {false, true}) {
    auto gate = random_doubles(n, 7, 3.0);
    auto up = random_doubles(n, 8);
    const auto c = random_doubles(n, 9);
    auto loss = [&] {
      std::vector<double> act(n);
      glu_forward(gelu, gate.data(), up.data(), n, act.data());
      return dot(act, c);
    };
    std::vector<double> dg(n), du(n);
    glu_backward(gelu, gate.data(), up.data(), c.data(), n, dg.data(), du.data());
    expect_matches_finite_differences(gate, dg, loss, gelu ? "geglu gate" : "swiglu gate");
    expect_matches_finite_differences(up, du, loss, gelu ? "geglu up" : "swiglu up");
  }
}

TEST(TrainGradients, CausalGroupedAttentionWithAndWithoutWindow) {
  for (int64_t window : {0, 3}) {
    const AttentionShape s{6, 4, 2, 8, 0.35f, window};
    const int64_t nq = s.len * s.n_head * s.head_dim, nk = s.len * s.n_head_kv * s.head_dim;
    auto q = random_doubles(nq, 10), k = random_doubles(nk, 11), v = random_doubles(nk, 12);
    const auto c = random_doubles(nq, 13);
    std::vector<double> probs(s.n_head * s.len * s.len), out(nq);
    auto loss = [&] {
      attention_forward(s, q.data(), k.data(), v.data(), probs.data(), out.data());
      return dot(out, c);
    };
    loss();
    std::vector<double> dq(nq), dk(nk), dv(nk);
    attention_backward(s, q.data(), k.data(), v.data(), probs.data(), c.data(), dq.data(), dk.data(), dv.data());
    expect_matches_finite_differences(q, dq, loss, "attention q");
    expect_matches_finite_differences(k, dk, loss, "attention k");
    expect_matches_finite_differences(v, dv, loss, "attention v");
    // The window hides what it should: the last row's weights before it are exactly zero.
    loss();
    for (int64_t j = 0; window && j + window < s.len; ++j) EXPECT_EQ(probs[(s.len - 1) * s.len + j], 0.0);
  }
}

TEST(TrainGradients, FrozenProductsOverQuantizedRows) {
  const int64_t n = 3, n_in = 64, n_out = 5;
  for (GgmlType type : {GgmlType::F32, GgmlType::F16, GgmlType::Q4_0, GgmlType::Q4_K}) {
    const int64_t cols = type == GgmlType::Q4_K ? 256 : n_in;
    const auto values = test::random_values(static_cast<size_t>(cols * n_out), 14);
    engine::Weight w;
    if (type == GgmlType::F32) {
      w = engine::make_weight_f32("w", cols, n_out, values);
    } else {
      const size_t row_bytes = *ggml_row_bytes(type, static_cast<uint64_t>(cols));
      std::vector<std::byte> raw(row_bytes * n_out);
      if (type == GgmlType::F16)
        for (int64_t i = 0; i < cols * n_out; ++i) reinterpret_cast<uint16_t*>(raw.data())[i] = f32_to_f16(values[i]);
      else
        for (int64_t o = 0; o < n_out; ++o) quantize_row(type, values.data() + o * cols, raw.data() + o * row_bytes, cols, nullptr);
      w = engine::make_weight("w", type, cols, n_out, raw);
    }
    w.bias = {0.5f, -1.0f, 0.25f, 2.0f, 0.0f};
    auto x = random_doubles(n * cols, 15);
    const auto c = random_doubles(n * n_out, 16);
    auto loss = [&] {
      std::vector<double> y(n * n_out);
      frozen_forward(w, x.data(), n, y.data());
      return dot(y, c);
    };
    std::vector<double> dx(x.size(), 0.0);
    frozen_backward(w, c.data(), n, dx.data());
    expect_matches_finite_differences(x, dx, loss, ggml_type_name(type).data(), 7);
    // The forward equals the engine's product up to the engine's rounding of x to Q8/f16
    // (about 1% of each product's typical size, sqrt(cols) here).
    std::vector<float> xf(x.begin(), x.end()), engine_y(n * n_out);
    engine::matmul(w, xf.data(), n, engine_y.data());
    std::vector<double> y(n * n_out);
    frozen_forward(w, x.data(), n, y.data());
    for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(engine_y[i], y[i], 0.03 * std::sqrt(static_cast<double>(cols))) << ggml_type_name(type) << " " << i;
  }
}

TEST(TrainGradients, LowRankProduct) {
  const LowRankShape s{12, 7, 3, 0.75f};
  const int64_t n = 4;
  auto a = random_doubles(s.rank * s.n_in, 17), b = random_doubles(s.n_out * s.rank, 18), x = random_doubles(n * s.n_in, 19);
  const auto c = random_doubles(n * s.n_out, 20);
  auto loss = [&] {
    std::vector<double> u(n * s.rank), y(n * s.n_out, 0.0);
    low_rank_forward(s, a.data(), b.data(), x.data(), n, u.data(), y.data());
    return dot(y, c);
  };
  std::vector<double> u(n * s.rank), y(n * s.n_out, 0.0);
  low_rank_forward(s, a.data(), b.data(), x.data(), n, u.data(), y.data());
  std::vector<double> ga(a.size(), 0.0), gb(b.size(), 0.0), dx(x.size(), 0.0);
  low_rank_backward(s, a.data(), b.data(), x.data(), u.data(), c.data(), n, ga.data(), gb.data(), dx.data());
  expect_matches_finite_differences(a, ga, loss, "lora A");
  expect_matches_finite_differences(b, gb, loss, "lora B");
  expect_matches_finite_differences(x, dx, loss, "lora x");
}

TEST(TrainGradients, HeadCrossEntropyWithSoftcapAndIgnoredRows) {
  const int64_t n = 4, E = 32, V = 1100;  // more than two vocabulary tiles
  const auto values = test::random_values(static_cast<size_t>(E * V), 21, 0.5f);
  const engine::Weight head = engine::make_weight_f32("head", E, V, values);
  const std::vector<int32_t> labels = {5, -1, 1099, 600};
  for (float cap : {0.0f, 3.0f}) {
    auto hn = random_doubles(n * E, 22);
    auto loss = [&] { return head_cross_entropy(head, cap, hn.data(), labels, 1.0, static_cast<double*>(nullptr)); };
    std::vector<double> d(hn.size(), 0.0);
    const double l = head_cross_entropy(head, cap, hn.data(), labels, 1.0, d.data());
    EXPECT_DOUBLE_EQ(l, loss());
    // The loss itself against a direct log-softmax.
    double direct = 0;
    for (int64_t t = 0; t < n; ++t) {
      if (labels[t] < 0) continue;
      std::vector<double> z(V);
      double max = -1e300;
      for (int64_t v = 0; v < V; ++v) {
        double s = 0;
        for (int64_t e = 0; e < E; ++e) s += hn[t * E + e] * values[v * E + e];
        z[v] = cap > 0 ? cap * std::tanh(s / cap) : s;
        max = std::max(max, z[v]);
      }
      double sum = 0;
      for (double zv : z) sum += std::exp(zv - max);
      direct += max + std::log(sum) - z[labels[t]];
    }
    EXPECT_NEAR(l, direct, 1e-9 * std::abs(direct));
    for (int64_t e = 0; e < E; ++e) EXPECT_EQ(d[1 * E + e], 0.0) << "an ignored row has no gradient";
    expect_matches_finite_differences(hn, d, loss, cap > 0 ? "head softcapped" : "head");
  }
}

// --- Whole models ---------------------------------------------------------------------------

enum class TinyArch { Llama, Qwen2, Qwen3, Gemma3 };

// tiny_llama's weights with each architecture's features switched on: biases (qwen2), per-head
// q/k norms (qwen3, gemma3), embedding scale, post norms, GeGLU, sliding-window layers with
// their own rope base, soft-capped tied head (gemma3). Q4_0 weights: the base is quantized.
engine::Model tiny_model(TinyArch arch) {
  test::TinyLlamaShape shape;
  shape.n_vocab = 48;
  shape.n_ff = 64;
  shape.weight_type = GgmlType::Q4_0;
  engine::Model m = test::tiny_llama(shape);
  engine::HParams& hp = m.hp;
  uint32_t seed = 100;
  auto norm_weights = [&](int64_t n) {
    auto v = test::random_values(static_cast<size_t>(n), seed++, 0.2f);
    for (float& x : v) x += 1.0f;
    return v;
  };
  m.output_norm = norm_weights(hp.n_embd);
  for (engine::Layer& L : m.layers) {
    L.attn_norm = norm_weights(hp.n_embd);
    L.ffn_norm = norm_weights(hp.n_embd);
  }
  switch (arch) {
    case TinyArch::Llama:
      hp.arch = Arch::Llama;
      m.rope_freqs = norm_weights(hp.n_rot / 2);
      break;
    case TinyArch::Qwen2:
      hp.arch = Arch::Qwen2, hp.rope_type = engine::RopeType::Neox;
      for (engine::Layer& L : m.layers) {
        L.wq.bias = test::random_values(static_cast<size_t>(L.wq.n_out), seed++);
        L.wk.bias = test::random_values(static_cast<size_t>(L.wk.n_out), seed++);
        L.wv.bias = test::random_values(static_cast<size_t>(L.wv.n_out), seed++);
      }
      break;
    case TinyArch::Qwen3:
    case TinyArch::Gemma3:
      hp.arch = arch == TinyArch::Qwen3 ? Arch::Qwen3 : Arch::Gemma3;
      hp.rope_type = engine::RopeType::Neox;
      for (engine::Layer& L : m.layers) {
        L.attn_q_norm = norm_weights(hp.head_dim);
        L.attn_k_norm = norm_weights(hp.head_dim);
      }
      if (arch == TinyArch::Gemma3) {
        hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
        hp.ffn_act = engine::FfnActivation::GeluTanh;
        hp.logit_softcap = 5.0f;
        hp.n_swa = 3;
        hp.swa_layers = {true, false, true};
        hp.rope_freq_base_swa = 500.0f;
        hp.rope_freq_scale = 0.5f;
        for (engine::Layer& L : m.layers) {
          L.attn_post_norm = norm_weights(hp.n_embd);
          L.ffn_post_norm = norm_weights(hp.n_embd);
        }
      }
      break;
  }
  return m;
}

template <typename T>
TrainableAdapter<T> random_adapter(const engine::Model& m, int64_t rank, uint32_t seed) {
  TrainableAdapter<T> ad;
  for (int64_t il = 0; il < m.hp.n_layer; ++il)
    for (Module mod : kAllModules) {
      const engine::Weight& w = module_weight(m.layers[static_cast<size_t>(il)], mod);
      LoraFactors<T> f;
      f.target = &w, f.layer = il, f.module = mod;
      f.shape = {w.n_in, w.n_out, rank, 2.0f};
      const auto a = random_doubles(static_cast<size_t>(rank * w.n_in), seed++, 0.05);
      const auto b = random_doubles(static_cast<size_t>(w.n_out * rank), seed++, 0.05);
      f.a.assign(a.begin(), a.end());
      f.b.assign(b.begin(), b.end());
      f.grad_a.assign(f.a.size(), T(0));
      f.grad_b.assign(f.b.size(), T(0));
      ad.push_back(std::move(f));
    }
  return ad;
}

class TrainGradientsModel : public ::testing::TestWithParam<TinyArch> {};

TEST_P(TrainGradientsModel, AdapterGradientsMatchFiniteDifferences) {
  const engine::Model m = tiny_model(GetParam());
  auto ad = random_adapter<double>(m, 2, 7);
  const std::vector<int32_t> t1 = {1, 5, 9, 2, 33, 7, 7, 40}, l1 = {5, 9, 2, 33, 7, 7, 40, -1};
  const std::vector<int32_t> t2 = {3, 4, 47, 0, 12}, l2 = {-1, -1, 0, 12, -1};  // a masked prompt
  const std::vector<TrainSequence> seqs = {{t1, l1}, {t2, l2}};
  const double loss = lora_loss(m, ad, seqs, true, 1.0, false);
  EXPECT_TRUE(std::isfinite(loss));
  // Checkpointing recomputes the same activations: the same gradients.
  auto ad_ckpt = ad;
  for (auto& f : ad_ckpt) std::fill(f.grad_a.begin(), f.grad_a.end(), 0.0), std::fill(f.grad_b.begin(), f.grad_b.end(), 0.0);
  EXPECT_EQ(lora_loss(m, ad_ckpt, seqs, true, 1.0, true), loss);
  for (size_t i = 0; i < ad.size(); ++i) {
    EXPECT_EQ(ad[i].grad_a, ad_ckpt[i].grad_a);
    EXPECT_EQ(ad[i].grad_b, ad_ckpt[i].grad_b);
  }
  auto loss_only = [&] { return lora_loss(m, ad, seqs, false, 1.0, false); };
  EXPECT_EQ(loss_only(), loss);
  // Every factor of the first and last block, A and B, sampled.
  for (LoraFactors<double>& f : ad) {
    if (f.layer == 1) continue;
    const std::string name = "blk." + std::to_string(f.layer) + "." + std::string(module_name(f.module));
    expect_matches_finite_differences(f.a, f.grad_a, loss_only, (name + " A").c_str(), 97);
    expect_matches_finite_differences(f.b, f.grad_b, loss_only, (name + " B").c_str(), 29);
  }
}

std::string arch_test_name(const ::testing::TestParamInfo<TinyArch>& info) {
  switch (info.param) {
    case TinyArch::Llama: return "llama";
    case TinyArch::Qwen2: return "qwen2";
    case TinyArch::Qwen3: return "qwen3";
    case TinyArch::Gemma3: return "gemma3";
  }
  return "unknown";
}

INSTANTIATE_TEST_SUITE_P(EveryArchitecture, TrainGradientsModel,
                         ::testing::Values(TinyArch::Llama, TinyArch::Qwen2, TinyArch::Qwen3, TinyArch::Gemma3),
                         arch_test_name);

TEST(TrainGradients, TrainingForwardMatchesEngineLogProbabilities) {
  // With zero B the adapter changes nothing: the training loss equals the engine's
  // cross-entropy of the same tokens (up to the engine's Q8 activation rounding).
  for (TinyArch arch : {TinyArch::Llama, TinyArch::Gemma3}) {
    const engine::Model m = tiny_model(arch);
    auto ad = random_adapter<float>(m, 2, 3);
    for (auto& f : ad) std::fill(f.b.begin(), f.b.end(), 0.0f);
    const std::vector<int32_t> t = {1, 5, 9, 2, 33, 7, 7, 40}, l = {5, 9, 2, 33, 7, 7, 40, -1};
    const std::vector<TrainSequence> seqs = {{t, l}};
    const double loss = lora_loss(m, ad, seqs, false, 1.0, false);
    engine::KVCache cache = engine::make_kv_cache(m, 16);
    std::vector<float> logits(t.size() * m.hp.n_vocab), lp(m.hp.n_vocab);
    engine::forward(m, cache, t, true, logits.data());
    double engine_loss = 0;
    for (size_t i = 0; i + 1 < t.size(); ++i) {
      engine::log_softmax(logits.data() + i * m.hp.n_vocab, m.hp.n_vocab, lp.data());
      engine_loss -= lp[static_cast<size_t>(l[i])];
    }
    EXPECT_NEAR(loss, engine_loss, 0.02 * engine_loss);
  }
}

}  // namespace
}  // namespace optiq::train
