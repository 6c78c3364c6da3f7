// Dot kernels (src/quant/dot.h) and the engine's matmul seam (src/engine/weight.h):
// AVX2 against scalar, scalar against a double-precision sum of the dequantized rows,
// activation quantizer error budgets, quantized matmul against its dequantized f32 copy,
// prefill (sgemm) against decode (vec_dot), threads, and raw row reads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "engine/threads.h"
#include "engine/weight.h"
#include "model/model_source.h"
#include "quant/blocks.h"
#include "quant/dot.h"
#include "quant/dot_impl.h"
#include "quant/float16.h"
#include "quant/quantize.h"
#include "util/error.h"

namespace optiq {
namespace {

using engine::Weight;

const GgmlType kWeightTypes[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                 GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::IQ4_NL, GgmlType::Q2_K,
                                 GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_XS};

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

size_t row_bytes(GgmlType t, int64_t n) { return *ggml_row_bytes(t, static_cast<uint64_t>(n)); }

std::vector<float> normal_floats(size_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, sigma);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// One row of `type` holding x (floats converted, blocks quantized as llama-quantize would).
std::vector<std::byte> store_row(GgmlType type, const float* x, int64_t n) {
  std::vector<std::byte> out(row_bytes(type, n));
  if (is_float_type(type))
    quantize_activation(type, x, out.data(), n);
  else
    quantize_row(type, x, out.data(), n, nullptr);
  return out;
}

// A row of any stored or activation type as floats (the exact values the kernels multiply).
std::vector<double> row_values(GgmlType type, const std::byte* p, int64_t n) {
  std::vector<float> f(static_cast<size_t>(n));
  switch (type) {
    case GgmlType::F32: std::memcpy(f.data(), p, f.size() * 4); break;
    case GgmlType::F16: f16_to_f32_n(reinterpret_cast<const uint16_t*>(p), f.data(), f.size()); break;
    case GgmlType::BF16: bf16_to_f32_n(reinterpret_cast<const uint16_t*>(p), f.data(), f.size()); break;
    case GgmlType::Q8_1: {
      const auto* b = reinterpret_cast<const BlockQ8_1*>(p);
      for (int64_t i = 0; i < n; ++i) f[i] = f16_to_f32(b[i / 32].d) * b[i / 32].qs[i % 32];
      break;
    }
    case GgmlType::Q8_K: {
      const auto* b = reinterpret_cast<const BlockQ8_K*>(p);
      for (int64_t i = 0; i < n; ++i) f[i] = b[i / 256].d * b[i / 256].qs[i % 256];
      break;
    }
    default: dequantize_row(type, p, f.data(), n);
  }
  return {f.begin(), f.end()};
}

// The dot product the kernels approximate, in double, and sum |w_i a_i| (the scale errors are
// measured against). Q4_1/Q5_1 multiply their min by the activation block's stored s, an f16
// rounding of d * sum(q); the reference uses the same s.
struct Reference {
  double dot = 0, magnitude = 0;
};
Reference reference_dot(GgmlType wtype, const std::byte* w, const std::byte* a, int64_t n) {
  const GgmlType atype = *vec_dot_type(wtype);
  const std::vector<double> wv = row_values(wtype, w, n), av = row_values(atype, a, n);
  Reference r;
  for (int64_t i = 0; i < n; ++i) {
    r.dot += wv[i] * av[i];
    r.magnitude += std::fabs(wv[i] * av[i]);
  }
  if (atype == GgmlType::Q8_1) {
    const auto* ab = reinterpret_cast<const BlockQ8_1*>(a);
    for (int64_t b = 0; b < n / 32; ++b) {
      const float m = wtype == GgmlType::Q4_1 ? f16_to_f32(reinterpret_cast<const BlockQ4_1*>(w)[b].m)
                                              : f16_to_f32(reinterpret_cast<const BlockQ5_1*>(w)[b].m);
      double exact = 0;
      for (int j = 0; j < 32; ++j) exact += static_cast<double>(f16_to_f32(ab[b].d)) * ab[b].qs[j];
      r.dot += m * (f16_to_f32(ab[b].s) - exact);
    }
  }
  return r;
}

std::vector<std::byte> activation_row(GgmlType wtype, const std::vector<float>& x) {
  const GgmlType atype = *vec_dot_type(wtype);
  std::vector<std::byte> a(row_bytes(atype, static_cast<int64_t>(x.size())));
  quantize_activation(atype, x.data(), a.data(), static_cast<int64_t>(x.size()));
  return a;
}

// Activation rows that stress the quantizers: zeros, constants, one outlier, huge and tiny
// magnitudes, exact halves (rounding ties).
std::vector<std::vector<float>> adversarial_activations(int64_t n) {
  std::vector<std::vector<float>> rows;
  rows.push_back(std::vector<float>(n, 0.0f));
  rows.push_back(std::vector<float>(n, -2.5f));
  auto outlier = normal_floats(n, 11, 0.01f);
  outlier[7] = 50.0f;
  rows.push_back(outlier);
  rows.push_back(normal_floats(n, 12, 1e4f));
  rows.push_back(normal_floats(n, 13, 1e-5f));
  std::vector<float> ties(n);
  for (int64_t i = 0; i < n; ++i) ties[i] = (i % 32 == 0) ? 127.0f : static_cast<float>(i % 7) - 3.5f;
  rows.push_back(ties);
  return rows;
}

TEST(VecDot, EverySupportedTypeHasAScalarKernel) {
  for (GgmlType t : kWeightTypes) {
    ASSERT_TRUE(vec_dot_supported(t)) << ggml_type_name(t);
    EXPECT_NE(vec_dot_kernel(t, DotIsa::Scalar), nullptr) << ggml_type_name(t);
    if (dot_isa_available(DotIsa::Avx2)) {
      EXPECT_NE(vec_dot_kernel(t, DotIsa::Avx2), nullptr) << ggml_type_name(t);
    }
  }
  EXPECT_FALSE(vec_dot_supported(GgmlType::IQ2_XXS));
  EXPECT_EQ(*vec_dot_type(GgmlType::Q4_1), GgmlType::Q8_1);
  EXPECT_EQ(*vec_dot_type(GgmlType::IQ4_NL), GgmlType::Q8_0);
  EXPECT_EQ(*vec_dot_type(GgmlType::IQ4_XS), GgmlType::Q8_K);
  EXPECT_THROW(vec_dot(GgmlType::IQ2_XXS, 256, nullptr, nullptr), std::invalid_argument);
}

// The scalar kernel equals the exact dot product of the values it multiplies; the AVX2 kernel
// equals the scalar one up to f32 summation order.
TEST(VecDot, ScalarMatchesDoubleAndAvx2MatchesScalar) {
  const int64_t n = 4096;
  std::vector<std::vector<float>> acts = adversarial_activations(n);
  acts.push_back(normal_floats(n, 21));
  for (GgmlType t : kWeightTypes) {
    const std::vector<float> wf = normal_floats(n, 31, 0.05f);
    const std::vector<std::byte> w = store_row(t, wf.data(), n);
    for (size_t k = 0; k < acts.size(); ++k) {
      const std::vector<std::byte> a = activation_row(t, acts[k]);
      const Reference ref = reference_dot(t, w.data(), a.data(), n);
      const float scalar = vec_dot_kernel(t, DotIsa::Scalar)(n, w.data(), a.data());
      const bool has_avx2 = dot_isa_available(DotIsa::Avx2);
      const float avx2 = has_avx2 ? vec_dot_kernel(t, DotIsa::Avx2)(n, w.data(), a.data()) : scalar;
      if (!std::isfinite(ref.dot)) {
        // Q8_1's s = d * sum(q) overflows f16 for |x| ~ 1e4, in ggml as here.
        EXPECT_FALSE(std::isfinite(scalar) || std::isfinite(avx2)) << ggml_type_name(t) << " activation row " << k;
        continue;
      }
      EXPECT_LE(std::fabs(scalar - ref.dot), 1e-5 * ref.magnitude + 1e-30)
          << ggml_type_name(t) << " activation row " << k;
      // Block types sum integers exactly and only the per-block f32 steps differ; float types
      // accumulate every product in f32 along different paths.
      const double tolerance = is_float_type(t) ? 1e-5 : 2e-6;
      EXPECT_LE(std::fabs(avx2 - scalar), tolerance * ref.magnitude + 1e-30)
          << ggml_type_name(t) << " activation row " << k;
    }
  }
}

// Random bytes reach every bit pattern: Q8_0 weights of -128, Q6_K scales of -128, all 6-bit
// scale packings. Non-finite f16 scales give a non-finite result on both paths.
TEST(VecDot, Avx2MatchesScalarOnRandomBytes) {
  if (!dot_isa_available(DotIsa::Avx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t n = 1024;
  std::mt19937 rng(5);
  const std::vector<float> x = normal_floats(n, 6);
  for (GgmlType t : kWeightTypes) {
    if (is_float_type(t)) continue;
    const std::vector<std::byte> a = activation_row(t, x);
    for (int trial = 0; trial < 50; ++trial) {
      std::vector<std::byte> w(row_bytes(t, n));
      for (auto& b : w) b = static_cast<std::byte>(rng());
      const Reference ref = reference_dot(t, w.data(), a.data(), n);
      const float scalar = vec_dot_kernel(t, DotIsa::Scalar)(n, w.data(), a.data());
      const float avx2 = vec_dot_kernel(t, DotIsa::Avx2)(n, w.data(), a.data());
      if (!std::isfinite(ref.magnitude) || !std::isfinite(scalar)) {
        EXPECT_FALSE(std::isfinite(avx2) && std::isfinite(scalar)) << ggml_type_name(t);
        continue;
      }
      EXPECT_LE(std::fabs(avx2 - scalar), 2e-6 * ref.magnitude + 1e-30) << ggml_type_name(t) << " trial " << trial;
      EXPECT_LE(std::fabs(scalar - ref.dot), 1e-5 * ref.magnitude + 1e-30) << ggml_type_name(t) << " trial " << trial;
    }
  }
}

// The many-rows kernels against n_act calls of the one-row kernel: the same bits, for every
// group size and remainder, on random rows and the adversarial activations.
TEST(VecDotRows, EqualOneRowKernelBitForBit) {
  if (!dot_isa_available(DotIsa::Avx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t n = 512;
  std::vector<std::vector<float>> acts = adversarial_activations(n);
  for (uint32_t seed = 0; acts.size() < 11; ++seed) acts.push_back(normal_floats(n, 90 + seed));
  int with_rows_kernel = 0;
  for (GgmlType t : kWeightTypes) {
    const VecDotRowsFn rows = vec_dot_rows_kernel(t, DotIsa::Avx2);
    if (!rows) continue;
    ++with_rows_kernel;
    const VecDotFn one = vec_dot_kernel(t, DotIsa::Avx2);
    const size_t act_bytes = row_bytes(*vec_dot_type(t), n);
    std::vector<std::byte> packed;  // [acts.size()][act_bytes]
    for (const auto& x : acts) {
      const std::vector<std::byte> a = activation_row(t, x);
      packed.insert(packed.end(), a.begin(), a.end());
    }
    const std::vector<float> wf = normal_floats(static_cast<size_t>(n), 95, 0.05f);
    const std::vector<std::byte> w = store_row(t, wf.data(), n);
    for (int64_t n_act = 1; n_act <= static_cast<int64_t>(acts.size()); ++n_act) {
      const int64_t out_stride = 3;  // outputs interleaved as matmul's [token][row] layout makes them
      std::vector<float> got(static_cast<size_t>(n_act * out_stride), -1.0f);
      rows(n, w.data(), packed.data(), act_bytes, n_act, got.data(), out_stride);
      for (int64_t j = 0; j < n_act; ++j) {
        const float want = one(n, w.data(), packed.data() + j * act_bytes);
        EXPECT_EQ(std::memcmp(&got[static_cast<size_t>(j * out_stride)], &want, sizeof(float)), 0)
            << ggml_type_name(t) << ", " << n_act << " rows, row " << j;
        EXPECT_EQ(got[static_cast<size_t>(j * out_stride + 1)], -1.0f) << "wrote between outputs";
      }
    }
  }
  EXPECT_EQ(with_rows_kernel, 8);  // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q4_K, Q5_K
  EXPECT_EQ(vec_dot_rows_kernel(GgmlType::Q6_K, DotIsa::Avx2), nullptr);
  EXPECT_EQ(vec_dot_rows_kernel(GgmlType::Q4_0, DotIsa::Scalar), nullptr);
}

// The AVX2 Q8_0/Q8_1 quantizers write the scalar ones' bytes: random rows, the adversarial
// ones, and rows with NaN, infinities and values past int32.
TEST(ActivationQuant, Avx2WritesTheScalarBytes) {
  if (!dot_isa_available(DotIsa::Avx2)) GTEST_SKIP() << "no AVX2 on this CPU";
  const int64_t n = 256;
  std::vector<std::vector<float>> rows = adversarial_activations(n);
  for (uint32_t seed = 0; seed < 20; ++seed) rows.push_back(normal_floats(n, 300 + seed, seed % 2 ? 1e-3f : 30.0f));
  std::vector<float> special = normal_floats(n, 320);
  special[3] = NAN;
  special[40] = INFINITY;
  special[70] = -INFINITY;
  special[100] = 3e38f;
  for (int j = 128; j < 160; ++j) special[j] = NAN;  // a block of NaN only
  special[200] = -0.0f;
  rows.push_back(special);
  for (const auto& x : rows) {
    std::vector<BlockQ8_0> a0(n / 32), b0(n / 32);
    dot_detail::quantize_act_q8_0(x.data(), a0.data(), n);
    dot_detail::quantize_act_q8_0_avx2(x.data(), b0.data(), n);
    EXPECT_EQ(std::memcmp(a0.data(), b0.data(), a0.size() * sizeof(BlockQ8_0)), 0);
    std::vector<BlockQ8_1> a1(n / 32), b1(n / 32);
    dot_detail::quantize_act_q8_1(x.data(), a1.data(), n);
    dot_detail::quantize_act_q8_1_avx2(x.data(), b1.data(), n);
    EXPECT_EQ(std::memcmp(a1.data(), b1.data(), a1.size() * sizeof(BlockQ8_1)), 0);
  }
}

// Round trip of the activation quantizers: every value within half a step (plus the f16
// rounding of the block scale), Q8_1's s and Q8_K's bsums consistent with the levels.
TEST(ActivationQuant, RoundTripWithinHalfAStep) {
  const int64_t n = 1024;
  std::vector<std::vector<float>> rows = adversarial_activations(n);
  rows.push_back(normal_floats(n, 41));
  for (const auto& x : rows) {
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q8_1}) {
      std::vector<std::byte> q(row_bytes(t, n));
      quantize_activation(t, x.data(), q.data(), n);
      const std::vector<double> back = row_values(t, q.data(), n);
      std::vector<float> deq(static_cast<size_t>(n));
      dequantize_activation(t, q.data(), deq.data(), n);
      EXPECT_TRUE(std::equal(deq.begin(), deq.end(), back.begin())) << ggml_type_name(t);
      for (int64_t b = 0; b < n / 32; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[32 * b + j]));
        // Half a step, plus up to 127 times the f16 rounding of the step (large for tiny
        // blocks, whose step is an f16 subnormal).
        const float step = amax / 127.f;
        const double bound = 0.5 * step + 127 * std::fabs(f16_to_f32(f32_to_f16(step)) - step) + 1e-30;
        for (int j = 0; j < 32; ++j)
          ASSERT_LE(std::fabs(back[32 * b + j] - x[32 * b + j]), bound) << ggml_type_name(t) << " block " << b;
        if (t == GgmlType::Q8_1) {
          const auto& blk = reinterpret_cast<const BlockQ8_1*>(q.data())[b];
          int sum = 0;
          for (int j = 0; j < 32; ++j) sum += blk.qs[j];
          EXPECT_EQ(blk.s, f32_to_f16((amax / 127.f) * static_cast<float>(sum)));
        }
      }
    }
    std::vector<BlockQ8_K> k(n / 256);
    quantize_activation(GgmlType::Q8_K, x.data(), k.data(), n);
    for (int64_t b = 0; b < n / 256; ++b) {
      float amax = 0;
      for (int j = 0; j < 256; ++j) amax = std::max(amax, std::fabs(x[256 * b + j]));
      for (int j = 0; j < 256; ++j)
        ASSERT_LE(std::fabs(k[b].d * k[b].qs[j] - x[256 * b + j]), 0.5001 * amax / 127 + 1e-30) << "Q8_K block " << b;
      for (int g = 0; g < 16; ++g) {
        int sum = 0;
        for (int j = 0; j < 16; ++j) sum += k[b].qs[16 * g + j];
        EXPECT_EQ(k[b].bsums[g], sum);
      }
    }
  }
  EXPECT_THROW(quantize_activation(GgmlType::Q4_0, rows[0].data(), nullptr, n), std::invalid_argument);
  EXPECT_THROW(quantize_activation(GgmlType::Q8_K, rows[0].data(), nullptr, 100), std::invalid_argument);
}

// A Weight of `type` with n_out random rows, and its f32 copy (the dequantized values).
struct TestWeight {
  Weight stored, f32;
};
TestWeight random_weight(GgmlType type, int64_t n_in, int64_t n_out, uint32_t seed) {
  const std::vector<float> values = normal_floats(static_cast<size_t>(n_in * n_out), seed, 0.05f);
  std::vector<std::byte> raw;
  std::vector<float> deq(values.size());
  for (int64_t o = 0; o < n_out; ++o) {
    const std::vector<std::byte> row = store_row(type, values.data() + o * n_in, n_in);
    raw.insert(raw.end(), row.begin(), row.end());
    const std::vector<double> back = row_values(type, row.data(), n_in);
    std::copy(back.begin(), back.end(), deq.begin() + o * n_in);
  }
  TestWeight w{engine::make_weight("w", type, n_in, n_out, raw), engine::make_weight_f32("w_f32", n_in, n_out, deq)};
  std::vector<float> bias = normal_floats(static_cast<size_t>(n_out), seed + 1);
  w.stored.bias = bias;
  w.f32.bias = bias;
  return w;
}

double rel_rms(const std::vector<float>& got, const std::vector<float>& want) {
  double err = 0, ref = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    err += (got[i] - want[i]) * static_cast<double>(got[i] - want[i]);
    ref += want[i] * static_cast<double>(want[i]);
  }
  return std::sqrt(err / ref);
}

// Relative RMS error budget of one decode matmul from rounding the activations, about 2.5x
// what this test measures (f16 1.6e-4, bf16 1.3e-3, Q8_0/Q8_1 4.0e-3, Q8_K 5.4e-3).
double activation_budget(GgmlType t) {
  switch (*vec_dot_type(t)) {
    case GgmlType::F32: return 1e-6;
    case GgmlType::F16: return 4e-4;
    case GgmlType::BF16: return 3e-3;
    case GgmlType::Q8_K: return 1.4e-2;
    default: return 1e-2;  // Q8_0, Q8_1
  }
}

// Decode (few tokens: vec_dot on quantized activations) and prefill (many tokens: sgemm of
// dequantized tiles with the rounded activations) against the f32 matmul of the dequantized
// weight, and against each other: they multiply the same values.
TEST(Matmul, QuantizedWeightMatchesDequantizedCopy) {
  const int64_t n_in = 512, n_out = 300, n_prefill = 64;  // 64 tokens: the sgemm path for every type
  const std::vector<float> x = normal_floats(static_cast<size_t>(n_in * n_prefill), 51);
  for (GgmlType t : kWeightTypes) {
    const TestWeight w = random_weight(t, n_in, n_out, 61);
    std::vector<float> want(static_cast<size_t>(n_out * n_prefill)), prefill(want.size()), decode(want.size());
    for (int64_t tok = 0; tok < n_prefill; ++tok)
      engine::matmul(w.f32, x.data() + tok * n_in, 1, want.data() + tok * n_out);
    engine::matmul(w.stored, x.data(), n_prefill, prefill.data());
    for (int64_t tok = 0; tok < n_prefill; ++tok)
      engine::matmul(w.stored, x.data() + tok * n_in, 1, decode.data() + tok * n_out);
    EXPECT_LT(rel_rms(prefill, want), activation_budget(t)) << ggml_type_name(t);
    EXPECT_LT(rel_rms(decode, want), activation_budget(t)) << ggml_type_name(t);
    // Q4_1/Q5_1 decode multiplies the min by the f16-rounded activation sum s (measured 4e-4).
    const bool uses_s = *vec_dot_type(t) == GgmlType::Q8_1;
    EXPECT_LT(rel_rms(decode, prefill), uses_s ? 1e-3 : 1e-5) << ggml_type_name(t);
  }
}

// Every output is computed by one thread with the same kernel, so the thread count does not
// change a single bit.
TEST(Matmul, ThreadCountDoesNotChangeResults) {
  const int64_t n_in = 1024, n_out = 512;
  const TestWeight w = random_weight(GgmlType::Q4_K, n_in, n_out, 71);
  const std::vector<float> x = normal_floats(static_cast<size_t>(n_in * 64), 72);
  for (int64_t n_tokens : {1, 64}) {
    std::vector<float> one(static_cast<size_t>(n_out * n_tokens)), two(one.size());
    engine::set_num_threads(1);
    engine::matmul(w.stored, x.data(), n_tokens, one.data());
    engine::set_num_threads(2);
    EXPECT_EQ(engine::num_threads(), 2);
    engine::matmul(w.stored, x.data(), n_tokens, two.data());
    engine::set_num_threads(0);
    EXPECT_EQ(one, two) << n_tokens << " tokens";
  }
  EXPECT_GE(engine::num_threads(), 1);
}

TEST(Matmul, GetRowsDequantizesTheRequestedRows) {
  const TestWeight w = random_weight(GgmlType::Q5_K, 256, 10, 81);
  const int32_t ids[3] = {9, 0, 9};
  std::vector<float> got(3 * 256), want(3 * 256);
  engine::get_rows(w.stored, ids, got.data());
  engine::get_rows(w.f32, ids, want.data());
  EXPECT_EQ(got, want);
  const int32_t bad[1] = {10};
  EXPECT_THROW(engine::get_rows(w.stored, bad, got.data()), InputError);
}

TEST(Matmul, MakeWeightChecksTypeAndSize) {
  std::vector<std::byte> raw(18 * 4);
  EXPECT_NO_THROW(engine::make_weight("ok", GgmlType::Q4_0, 64, 2, raw));
  EXPECT_THROW(engine::make_weight("size", GgmlType::Q4_0, 64, 3, raw), std::invalid_argument);
  EXPECT_THROW(engine::make_weight("blocks", GgmlType::Q4_0, 48, 2, raw), std::invalid_argument);
  EXPECT_THROW(engine::make_weight("type", GgmlType::IQ2_XXS, 256, 1, raw), std::invalid_argument);
}

// read_rows_raw reorders stored rows exactly as read_rows_f32 does (q/k rope permutation).
TEST(ModelSourceRows, RawRowsFollowTheRopePermutation) {
  const int64_t width = 8, rows = 12;
  std::vector<uint16_t> halves(static_cast<size_t>(width * rows));
  for (size_t i = 0; i < halves.size(); ++i) halves[i] = f32_to_f16(static_cast<float>(i));
  SourceTensor t;
  t.name = "blk.0.attn_q.weight";
  t.type = GgmlType::F16;
  t.shape = {static_cast<uint64_t>(width), static_cast<uint64_t>(rows)};
  t.data = std::as_bytes(std::span<const uint16_t>(halves));
  t.transform.rope_permute_heads = 3;
  std::vector<std::byte> raw(halves.size() * 2);
  read_rows_raw(t, 0, rows, raw.data());
  std::vector<float> from_raw(halves.size()), from_f32(halves.size());
  f16_to_f32_n(reinterpret_cast<const uint16_t*>(raw.data()), from_raw.data(), from_raw.size());
  read_rows_f32(t, 0, rows, from_f32.data());
  EXPECT_EQ(from_raw, from_f32);
  EXPECT_NE(from_raw[static_cast<size_t>(width)], 8.0f);  // row 1 came from elsewhere
}

}  // namespace
}  // namespace optiq
