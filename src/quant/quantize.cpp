#include "quant/quantize.h"

#include <stdexcept>
#include <string>

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
    case GgmlType::Q8_0: case GgmlType::IQ4_NL:
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
    default: break;  // check_row refused it
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
    default: break;
  }
}

}  // namespace optiq
