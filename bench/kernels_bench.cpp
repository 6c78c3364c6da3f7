// Kernel micro-benchmarks: one dot product over a 4096-wide row per weight type, scalar vs
// AVX2, and the engine's matmul of a 4096 x 4096 weight for 1 token (decode) and 64 tokens
// (prefill; and 8, 16 and 32 tokens, the batched decode of a server) per type. Results:
// docs/benchmarks.md.
//   optiq_kernels_bench [--benchmark_filter=REGEX] [google benchmark flags]
// OPTIQ_THREADS sets the matmul threads (default: the number of cores).
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "engine/threads.h"
#include "engine/weight.h"
#include "quant/dot.h"
#include "quant/quantize.h"

namespace {

using optiq::bench::gaussian_floats;

using optiq::GgmlType;

constexpr int64_t kWidth = 4096;

const GgmlType kTypes[] = {GgmlType::F32,  GgmlType::F16,    GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                           GgmlType::Q5_0, GgmlType::Q5_1,   GgmlType::Q8_0, GgmlType::IQ4_NL, GgmlType::Q2_K,
                           GgmlType::Q3_K, GgmlType::Q4_K,   GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_XS};

// rows × kWidth random weights stored as `type`.
std::vector<std::byte> random_rows(GgmlType type, int64_t rows, uint32_t seed) {
  const std::vector<float> w = gaussian_floats(static_cast<size_t>(rows * kWidth), seed);
  const size_t row_bytes = *optiq::ggml_row_bytes(type, kWidth);
  std::vector<std::byte> out(static_cast<size_t>(rows) * row_bytes);
  for (int64_t r = 0; r < rows; ++r) {
    if (type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16)
      optiq::quantize_activation(type, w.data() + r * kWidth, out.data() + r * row_bytes, kWidth);
    else
      optiq::quantize_row(type, w.data() + r * kWidth, out.data() + r * row_bytes, kWidth, nullptr);
  }
  return out;
}

void BM_VecDot(benchmark::State& state, GgmlType type, optiq::DotIsa isa) {
  const optiq::VecDotFn dot = optiq::vec_dot_kernel(type, isa);
  if (!dot) {
    state.SkipWithError("instruction set not available");
    return;
  }
  const std::vector<std::byte> w = random_rows(type, 1, 1);
  const GgmlType act_type = *optiq::vec_dot_type(type);
  std::vector<std::byte> act(*optiq::ggml_row_bytes(act_type, kWidth));
  const std::vector<float> x = gaussian_floats(kWidth, 2);
  optiq::quantize_activation(act_type, x.data(), act.data(), kWidth);
  for (auto _ : state) benchmark::DoNotOptimize(dot(kWidth, w.data(), act.data()));
  state.counters["weights/s"] = benchmark::Counter(static_cast<double>(kWidth), benchmark::Counter::kIsIterationInvariantRate);
}

void BM_Matmul(benchmark::State& state, GgmlType type, int64_t n_tokens) {
  if (const char* t = std::getenv("OPTIQ_THREADS")) optiq::engine::set_num_threads(std::atoi(t));
  const optiq::engine::Weight w =
      optiq::engine::make_weight("bench", type, kWidth, kWidth, random_rows(type, kWidth, 3));
  const std::vector<float> x = gaussian_floats(static_cast<size_t>(n_tokens * kWidth), 4);
  std::vector<float> y(static_cast<size_t>(n_tokens * kWidth));
  for (auto _ : state) {
    optiq::engine::matmul(w, x.data(), n_tokens, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * kWidth * kWidth * n_tokens,
                                                 benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
  state.counters["threads"] = optiq::engine::num_threads();
}

void register_all() {
  for (GgmlType type : kTypes) {
    const std::string name(optiq::ggml_type_name(type));
    for (optiq::DotIsa isa : {optiq::DotIsa::Scalar, optiq::DotIsa::Avx2})
      benchmark::RegisterBenchmark(("vec_dot/" + name + "/" + optiq::dot_isa_name(isa)).c_str(), BM_VecDot, type, isa);
  }
  for (GgmlType type : kTypes) {
    const std::string name(optiq::ggml_type_name(type));
    benchmark::RegisterBenchmark(("matmul_4096/" + name + "/decode_1").c_str(), BM_Matmul, type, 1)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
    for (const int tokens : {8, 16, 32})
      benchmark::RegisterBenchmark(("matmul_4096/" + name + "/prefill_" + std::to_string(tokens)).c_str(), BM_Matmul,
                                   type, tokens)
          ->Unit(benchmark::kMillisecond)->UseRealTime();
    benchmark::RegisterBenchmark(("matmul_4096/" + name + "/prefill_64").c_str(), BM_Matmul, type, 64)
        ->Unit(benchmark::kMillisecond)->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
