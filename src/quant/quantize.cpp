#include "quant/quantize.h"

#include <stdexcept>
#include <string>

#include "quant/dot.h"
#include "quant/quant_impl.h"

namespace optiq {
namespace {

using namespace quant_detail;

// Throws unless `type` is implemented and n a positive multiple of its block size.
void check_row(GgmlType type, int64_t n, const char* what) {
  if (!quantize_supported(type))
    throw std::invalid_argument(std::string(what) + ": type " + std::string(ggml_type_name(type)) + " is not supported");
  const uint32_t block = ggml_traits(type).block_elems;
  if (n <= 0 || n % block != 0)
    throw std::invalid_argument(std::string(what) + ": row of " + std::to_string(n) + " weights is not a multiple of " +
                                std::string(ggml_type_name(type)) + "'s block of " + std::to_string(block));
}

}  // namespace

bool quantize_supported(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
    case GgmlType::Q8_0: case GgmlType::IQ4_NL: case GgmlType::Q2_K: case GgmlType::Q3_K:
    case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: case GgmlType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n, const float* importance) {
  check_row(type, n, "quantize_row");
  switch (type) {
    case GgmlType::Q4_0: return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), n, importance);
    case GgmlType::Q4_1: return quantize_q4_1(src, static_cast<BlockQ4_1*>(dst), n, importance);
    case GgmlType::Q5_0: return quantize_q5_0(src, static_cast<BlockQ5_0*>(dst), n, importance);
    case GgmlType::Q5_1: return quantize_q5_1(src, static_cast<BlockQ5_1*>(dst), n, importance);
    case GgmlType::Q8_0: return quantize_q8_0(src, static_cast<BlockQ8_0*>(dst), n);  // ggml ignores importance
    case GgmlType::IQ4_NL: return quantize_iq4_nl(src, static_cast<BlockIQ4_NL*>(dst), n, importance);
    case GgmlType::Q2_K: return quantize_q2_k(src, static_cast<BlockQ2_K*>(dst), n, importance);
    case GgmlType::Q3_K: return quantize_q3_k(src, static_cast<BlockQ3_K*>(dst), n, importance);
    case GgmlType::Q4_K: return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), n, importance);
    case GgmlType::Q5_K: return quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), n, importance);
    case GgmlType::Q6_K: return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), n, importance);
    case GgmlType::IQ4_XS: return quantize_iq4_xs(src, static_cast<BlockIQ4_XS*>(dst), n, importance);
    default: break;  // check_row refused it
  }
}

void quantize_row_from_float(GgmlType type, const float* src, void* dst, int64_t n) {
  switch (type) {
    case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q5_0: case GgmlType::Q5_1:
      return quantize_row(type, src, dst, n, nullptr);
    case GgmlType::Q8_0: return quantize_activation(type, src, dst, n);
    case GgmlType::IQ4_NL:
      check_row(type, n, "quantize_row_from_float");
      return quantize_iq4_nl_single_scale(src, static_cast<BlockIQ4_NL*>(dst), n);
    default:
      throw std::invalid_argument("quantize_row_from_float: type " + std::string(ggml_type_name(type)) +
                                  " is not a KV cache block type");
  }
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  check_row(type, n, "dequantize_row");
  switch (type) {
    case GgmlType::Q4_0: return dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, n);
    case GgmlType::Q4_1: return dequantize_q4_1(static_cast<const BlockQ4_1*>(src), dst, n);
    case GgmlType::Q5_0: return dequantize_q5_0(static_cast<const BlockQ5_0*>(src), dst, n);
    case GgmlType::Q5_1: return dequantize_q5_1(static_cast<const BlockQ5_1*>(src), dst, n);
    case GgmlType::Q8_0: return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, n);
    case GgmlType::IQ4_NL: return dequantize_iq4_nl(static_cast<const BlockIQ4_NL*>(src), dst, n);
    case GgmlType::Q2_K: return dequantize_q2_k(static_cast<const BlockQ2_K*>(src), dst, n);
    case GgmlType::Q3_K: return dequantize_q3_k(static_cast<const BlockQ3_K*>(src), dst, n);
    case GgmlType::Q4_K: return dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, n);
    case GgmlType::Q5_K: return dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, n);
    case GgmlType::Q6_K: return dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, n);
    case GgmlType::IQ4_XS: return dequantize_iq4_xs(static_cast<const BlockIQ4_XS*>(src), dst, n);
    default: break;
  }
}

}  // namespace optiq
