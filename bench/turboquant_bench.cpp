// TurboQuant KV rows against F16 rows in the two loops of decode attention for one head:
// score every stored key (q . k) and accumulate every value (out += w * v). Per format and
// context length n, one iteration scores and accumulates n rows of width 128; the F16
// baseline uses optiq's AVX2 F16 dot kernel (what ggml does for an F16 cache) and an F16C
// axpy. Results: docs/benchmarks.md.
//   optiq_turboquant_bench [--benchmark_filter=REGEX] [google benchmark flags]
//   optiq_turboquant_bench --model MODEL.gguf [--tokens N]
// The second form prints the relative error of TurboQuant attention against exact attention
// on the model's real queries, keys and values (every layer, head and position of N
// pseudo-random tokens, N = 256 by default).
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "bench_util.h"
#include "engine/model.h"
#include "kv/attention_inputs.h"
#include "kv/turboquant.h"
#include "model/model_source.h"
#include "quant/dot.h"
#include "quant/float16.h"

namespace {

using optiq::bench::gaussian_floats;

using optiq::kv::RotationKind;
using optiq::kv::TurboQuantizer;

constexpr int64_t kDim = 128;

// out[i] += w * v[i] for an F16 row of kDim values.
void axpy_f16(float* out, float w, const uint16_t* v) {
  const __m256 s = _mm256_set1_ps(w);
  for (int64_t i = 0; i < kDim; i += 8) {
    const __m256 x = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v + i)));
    _mm256_storeu_ps(out + i, _mm256_fmadd_ps(s, x, _mm256_loadu_ps(out + i)));
  }
}

void BM_F16(benchmark::State& state) {
  const int64_t n = state.range(0);
  const optiq::VecDotFn dot = optiq::vec_dot_kernel(optiq::GgmlType::F16, optiq::DotIsa::Avx2);
  if (!dot) {
    state.SkipWithError("no AVX2");
    return;
  }
  const std::vector<float> kf = gaussian_floats(static_cast<size_t>(n * kDim), 1), vf = gaussian_floats(kf.size(), 2);
  const std::vector<float> qf = gaussian_floats(kDim, 3);
  std::vector<uint16_t> k(kf.size()), v(vf.size()), q(kDim);
  optiq::f32_to_f16_n(kf.data(), k.data(), k.size());
  optiq::f32_to_f16_n(vf.data(), v.data(), v.size());
  optiq::f32_to_f16_n(qf.data(), q.data(), q.size());
  std::vector<float> scores(static_cast<size_t>(n)), out(kDim);
  for (auto _ : state) {
    for (int64_t p = 0; p < n; ++p) scores[p] = 1e-3f * dot(kDim, k.data() + p * kDim, q.data());
    for (int64_t p = 0; p < n; ++p) axpy_f16(out.data(), scores[p], v.data() + p * kDim);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["ns_per_row"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                                          benchmark::Counter::kInvert);
  state.counters["cache_bytes"] = static_cast<double>(2 * n * kDim * 2);
}

void BM_Turbo(benchmark::State& state, double bits) {
  const int64_t n = state.range(0);
  const TurboQuantizer kq(optiq::kv::turbo_format(kDim, bits), RotationKind::Hadamard, 1);
  const TurboQuantizer vq(optiq::kv::turbo_format(kDim, bits), RotationKind::Hadamard, 2);
  const std::vector<float> kf = gaussian_floats(static_cast<size_t>(n * kDim), 1), vf = gaussian_floats(kf.size(), 2);
  const std::vector<float> qf = gaussian_floats(kDim, 3);
  const size_t rb = kq.row_bytes();
  std::vector<uint8_t> k(static_cast<size_t>(n) * rb), v(k.size());
  for (int64_t p = 0; p < n; ++p) {
    kq.quantize(kf.data() + p * kDim, k.data() + p * rb);
    vq.quantize(vf.data() + p * kDim, v.data() + p * rb);
  }
  std::vector<float> prepared(static_cast<size_t>(kq.query_floats())), scores(static_cast<size_t>(n)), out(kDim);
  kq.prepare_query(qf.data(), prepared.data());
  for (auto _ : state) {
    for (int64_t p = 0; p < n; ++p) scores[p] = 1e-3f * kq.score(prepared.data(), k.data() + p * rb);
    for (int64_t p = 0; p < n; ++p) vq.accumulate(out.data(), scores[p], v.data() + p * rb);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["ns_per_row"] = benchmark::Counter(static_cast<double>(n), benchmark::Counter::kIsIterationInvariantRate |
                                                                          benchmark::Counter::kInvert);
  state.counters["cache_bytes"] = static_cast<double>(2 * n * rb);
}

// The once-per-query costs TurboQuant adds: rotating q and rotating the output back.
void BM_Rotate(benchmark::State& state, RotationKind kind) {
  const TurboQuantizer tq(optiq::kv::turbo_format(kDim, 3), kind, 1);
  const std::vector<float> x = gaussian_floats(kDim, 4);
  std::vector<float> y(kDim), z(kDim);
  for (auto _ : state) {
    tq.prepare_query(x.data(), y.data());
    tq.unrotate(y.data(), z.data());
    benchmark::DoNotOptimize(z.data());
  }
}

int print_model_errors(const char* path, int64_t n) {
  const optiq::engine::Model model = optiq::engine::load_model(optiq::open_model_source(path));
  const auto& hp = model.hp;
  std::vector<int32_t> tokens(static_cast<size_t>(n));
  std::mt19937 rng(71);
  tokens[0] = 1;
  for (int64_t i = 1; i < n; ++i) tokens[i] = static_cast<int32_t>(3 + rng() % (hp.n_vocab - 3));
  const auto acts = optiq::kv::capture_attention_inputs(model, tokens);
  const int64_t d = hp.head_dim, width = hp.n_head_kv * d;
  std::printf("%s: %lld layers, head width %lld, %lld tokens\n", path, static_cast<long long>(hp.n_layer),
              static_cast<long long>(d), static_cast<long long>(n));
  std::printf("| bits | bits/element | rotation | attention output relative error |\n|---|---|---|---|\n");
  for (RotationKind kind : {RotationKind::Dense, RotationKind::Hadamard}) {
    for (double bits : {2.0, 2.5, 3.0, 3.5, 4.0}) {
      double err = 0.0, ref = 0.0;
      for (int64_t il = 0; il < hp.n_layer; ++il) {
        const uint64_t seed = optiq::kv::layer_rotation_seed(7, il);
        const TurboQuantizer kq(optiq::kv::turbo_format(d, bits), kind, seed);
        const TurboQuantizer vq(optiq::kv::turbo_format(d, bits), kind, seed + 1);
        const size_t rb = kq.row_bytes();
        std::vector<uint8_t> k(static_cast<size_t>(n * hp.n_head_kv) * rb), v(k.size());
        for (int64_t r = 0; r < n * hp.n_head_kv; ++r) {
          kq.quantize(acts[il].k.data() + r * d, k.data() + r * rb);
          vq.quantize(acts[il].v.data() + r * d, v.data() + r * rb);
        }
        std::vector<float> approx(d), exact(d), w(static_cast<size_t>(n));
        for (int64_t t = 0; t < n; ++t) {
          for (int64_t h = 0; h < hp.n_head; ++h) {
            const int64_t kvh = optiq::engine::kv_head_of(h, hp.n_head, hp.n_head_kv);
            const float* q = acts[il].q.data() + (t * hp.n_head + h) * d;
            double max_w = -1e30, sum = 0.0;
            for (int64_t p = 0; p <= t; ++p) {
              double s = 0.0;
              for (int64_t i = 0; i < d; ++i) s += static_cast<double>(q[i]) * acts[il].k[p * width + kvh * d + i];
              w[p] = static_cast<float>(hp.attn_scale * s);
              max_w = std::max(max_w, static_cast<double>(w[p]));
            }
            for (int64_t p = 0; p <= t; ++p) sum += (w[p] = static_cast<float>(std::exp(w[p] - max_w)));
            for (int64_t i = 0; i < d; ++i) {
              double acc = 0.0;
              for (int64_t p = 0; p <= t; ++p) acc += w[p] / sum * acts[il].v[p * width + kvh * d + i];
              exact[i] = static_cast<float>(acc);
            }
            optiq::kv::turbo_attention(kq, vq, q, k.data() + kvh * rb, v.data() + kvh * rb, hp.n_head_kv * rb, t + 1,
                                       hp.attn_scale, approx.data());
            for (int64_t i = 0; i < d; ++i) {
              err += std::pow(static_cast<double>(approx[i]) - exact[i], 2);
              ref += static_cast<double>(exact[i]) * exact[i];
            }
          }
        }
      }
      std::printf("| %g | %.3f | %s | %.4f |\n", bits, optiq::kv::turbo_format(d, bits).bits_per_element(),
                  kind == RotationKind::Dense ? "dense" : "hadamard", std::sqrt(err / ref));
    }
  }
  return 0;
}

}  // namespace

BENCHMARK(BM_F16)->Arg(2048)->Arg(32768);
BENCHMARK_CAPTURE(BM_Turbo, tq2, 2.0)->Arg(2048)->Arg(32768);
BENCHMARK_CAPTURE(BM_Turbo, tq3, 3.0)->Arg(2048)->Arg(32768);
BENCHMARK_CAPTURE(BM_Turbo, tq3_5, 3.5)->Arg(2048)->Arg(32768);
BENCHMARK_CAPTURE(BM_Turbo, tq4, 4.0)->Arg(2048)->Arg(32768);
BENCHMARK_CAPTURE(BM_Rotate, dense, RotationKind::Dense);
BENCHMARK_CAPTURE(BM_Rotate, hadamard, RotationKind::Hadamard);

int main(int argc, char** argv) {
  if (argc >= 3 && std::strcmp(argv[1], "--model") == 0) {
    const int64_t n = argc >= 5 && std::strcmp(argv[3], "--tokens") == 0 ? std::stoll(argv[4]) : 256;
    return print_model_errors(argv[2], n);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
