#include "quant/dot.h"

#include <cpuid.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "quant/dot_impl.h"
#include "quant/float16.h"
#include "quant/quantize.h"

namespace optiq {
namespace {

// AVX2 and FMA and F16C, and the OS saving the YMM registers (OSXSAVE + XCR0 bits 1-2).
bool detect_avx2() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const bool fma = ecx & (1u << 12), osxsave = ecx & (1u << 27), avx = ecx & (1u << 28), f16c = ecx & (1u << 29);
  if (!(fma && osxsave && avx && f16c)) return false;
  unsigned xcr0_lo, xcr0_hi;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  if ((xcr0_lo & 0x6u) != 0x6u) return false;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return ebx & (1u << 5);
}

void check_activation_row(GgmlType act_type, int64_t n, const char* what) {
  switch (act_type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16: case GgmlType::Q8_0: case GgmlType::Q8_1:
    case GgmlType::Q8_K:
      break;
    default:
      throw std::invalid_argument(std::string(what) + ": " + std::string(ggml_type_name(act_type)) +
                                  " is not an activation type");
  }
  const uint32_t block = ggml_traits(act_type).block_elems;
  if (n <= 0 || n % block != 0)
    throw std::invalid_argument(std::string(what) + ": row of " + std::to_string(n) + " values is not a multiple of " +
                                std::string(ggml_type_name(act_type)) + "'s block of " + std::to_string(block));
}

}  // namespace

std::optional<GgmlType> vec_dot_type(GgmlType weight_type) {
  switch (weight_type) {
    case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
      return weight_type;
    case GgmlType::Q4_0: case GgmlType::Q5_0: case GgmlType::Q8_0: case GgmlType::IQ4_NL:
      return GgmlType::Q8_0;
    case GgmlType::Q4_1: case GgmlType::Q5_1:
      return GgmlType::Q8_1;
    case GgmlType::Q2_K: case GgmlType::Q3_K: case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K:
    case GgmlType::IQ4_XS:
      return GgmlType::Q8_K;
    default:
      return std::nullopt;
  }
}

void quantize_activation(GgmlType act_type, const float* x, void* dst, int64_t n) {
  check_activation_row(act_type, n, "quantize_activation");
  static const bool avx2 = dot_isa_available(DotIsa::Avx2);
  const auto count = static_cast<size_t>(n);
  switch (act_type) {
    case GgmlType::F32: std::copy(x, x + n, static_cast<float*>(dst)); break;
    case GgmlType::F16: f32_to_f16_n(x, static_cast<uint16_t*>(dst), count); break;
    case GgmlType::BF16: f32_to_bf16_n(x, static_cast<uint16_t*>(dst), count); break;
    case GgmlType::Q8_0:
      (avx2 ? dot_detail::quantize_act_q8_0_avx2 : dot_detail::quantize_act_q8_0)(x, static_cast<BlockQ8_0*>(dst), n);
      break;
    case GgmlType::Q8_1:
      (avx2 ? dot_detail::quantize_act_q8_1_avx2 : dot_detail::quantize_act_q8_1)(x, static_cast<BlockQ8_1*>(dst), n);
      break;
    default: dot_detail::quantize_act_q8_k(x, static_cast<BlockQ8_K*>(dst), n); break;
  }
}

void dequantize_activation(GgmlType act_type, const void* src, float* x, int64_t n) {
  check_activation_row(act_type, n, "dequantize_activation");
  const auto count = static_cast<size_t>(n);
  switch (act_type) {
    case GgmlType::F32: std::copy_n(static_cast<const float*>(src), n, x); break;
    case GgmlType::F16: f16_to_f32_n(static_cast<const uint16_t*>(src), x, count); break;
    case GgmlType::BF16: bf16_to_f32_n(static_cast<const uint16_t*>(src), x, count); break;
    case GgmlType::Q8_0: dequantize_row(GgmlType::Q8_0, src, x, n); break;
    case GgmlType::Q8_1: {
      const auto* b = static_cast<const BlockQ8_1*>(src);
      for (int64_t i = 0; i < n; ++i) x[i] = f16_to_f32(b[i / 32].d) * static_cast<float>(b[i / 32].qs[i % 32]);
      break;
    }
    default: {
      const auto* b = static_cast<const BlockQ8_K*>(src);
      for (int64_t i = 0; i < n; ++i) x[i] = b[i / kQK_K].d * static_cast<float>(b[i / kQK_K].qs[i % kQK_K]);
    }
  }
}

bool dot_isa_available(DotIsa isa) {
  static const bool has_avx2 = detect_avx2();
  return isa == DotIsa::Scalar || has_avx2;
}

DotIsa dot_isa_best() { return dot_isa_available(DotIsa::Avx2) ? DotIsa::Avx2 : DotIsa::Scalar; }

const char* dot_isa_name(DotIsa isa) { return isa == DotIsa::Avx2 ? "avx2" : "scalar"; }

VecDotFn vec_dot_kernel(GgmlType weight_type, DotIsa isa) {
  if (!dot_isa_available(isa)) return nullptr;
  return isa == DotIsa::Avx2 ? dot_detail::avx2_kernel(weight_type) : dot_detail::scalar_kernel(weight_type);
}

VecDotRowsFn vec_dot_rows_kernel(GgmlType weight_type, DotIsa isa) {
  if (isa != DotIsa::Avx2 || !dot_isa_available(isa)) return nullptr;
  return dot_detail::avx2_rows_kernel(weight_type);
}

float vec_dot(GgmlType weight_type, int64_t n, const void* w_row, const void* act_row) {
  const VecDotFn fn = vec_dot_kernel(weight_type);
  if (!fn)
    throw std::invalid_argument("vec_dot: no dot kernel for " + std::string(ggml_type_name(weight_type)));
  return fn(n, w_row, act_row);
}

}  // namespace optiq
