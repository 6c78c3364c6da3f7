// Test-only bridge for the Python oracles (tests/oracle/check_quants.py, check_dot_kernels.py);
// not installed.
//   quant_tool quantize TYPE N_PER_ROW IN.f32 OUT.bin [IMPORTANCE.f32]
//     IN.f32 holds rows of N_PER_ROW little-endian floats; IMPORTANCE.f32 N_PER_ROW floats.
//   quant_tool dequantize TYPE N_PER_ROW IN.bin OUT.f32
//   quant_tool activation ACT_TYPE N_PER_ROW IN.f32 OUT.bin
//     rows converted by quantize_activation (ACT_TYPE f32, f16, bf16, q8_0, q8_1 or q8_K).
//   quant_tool vec_dot WEIGHT_TYPE N_PER_ROW W.bin ACT.bin OUT.f32 scalar|avx2
//     one f32 per row: row r of W.bin dotted with row r of ACT.bin (in the weight type's
//     activation type) by the named kernel.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/ggml_type.h"
#include "quant/dot.h"
#include "quant/quantize.h"

namespace {

std::vector<char> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, const void* data, size_t bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out) throw std::runtime_error("cannot write " + path);
}

int run(int argc, char** argv) {
  if (argc < 6) throw std::runtime_error("usage: quant_tool quantize|dequantize|activation|from_float|vec_dot TYPE N_PER_ROW IN OUT [...]");
  const std::string mode = argv[1];
  const auto type = optiq::ggml_type_from_name(argv[2]);
  if (!type) throw std::runtime_error(std::string("unknown type ") + argv[2]);
  const int64_t n = std::stoll(argv[3]);
  const auto row_bytes = optiq::ggml_row_bytes(*type, static_cast<uint64_t>(n));
  if (!row_bytes) throw std::runtime_error("row length is not a multiple of the block size");
  const std::vector<char> in = read_all(argv[4]);
  if (mode == "quantize") {
    const size_t rows = in.size() / (sizeof(float) * n);
    std::vector<float> importance;
    if (argc > 6) {
      const std::vector<char> raw = read_all(argv[6]);
      importance.resize(n);
      if (raw.size() != n * sizeof(float)) throw std::runtime_error("importance needs N_PER_ROW floats");
      std::memcpy(importance.data(), raw.data(), raw.size());
    }
    std::vector<float> src(rows * n);
    std::memcpy(src.data(), in.data(), src.size() * sizeof(float));
    std::vector<char> out(rows * *row_bytes);
    for (size_t r = 0; r < rows; ++r)
      optiq::quantize_row(*type, src.data() + r * n, out.data() + r * *row_bytes, n,
                          importance.empty() ? nullptr : importance.data());
    write_all(argv[5], out.data(), out.size());
  } else if (mode == "dequantize") {
    const size_t rows = in.size() / *row_bytes;
    std::vector<float> out(rows * n);
    for (size_t r = 0; r < rows; ++r) optiq::dequantize_row(*type, in.data() + r * *row_bytes, out.data() + r * n, n);
    write_all(argv[5], out.data(), out.size() * sizeof(float));
  } else if (mode == "activation") {
    const size_t rows = in.size() / (sizeof(float) * n);
    std::vector<float> src(rows * n);
    std::memcpy(src.data(), in.data(), src.size() * sizeof(float));
    std::vector<char> out(rows * *row_bytes);
    for (size_t r = 0; r < rows; ++r) optiq::quantize_activation(*type, src.data() + r * n, out.data() + r * *row_bytes, n);
    write_all(argv[5], out.data(), out.size());
  } else if (mode == "from_float") {
    const size_t rows = in.size() / (sizeof(float) * n);
    std::vector<float> src(rows * n);
    std::memcpy(src.data(), in.data(), src.size() * sizeof(float));
    std::vector<char> out(rows * *row_bytes);
    for (size_t r = 0; r < rows; ++r)
      optiq::quantize_row_from_float(*type, src.data() + r * n, out.data() + r * *row_bytes, n);
    write_all(argv[5], out.data(), out.size());
  } else if (mode == "vec_dot") {
    if (argc < 8) throw std::runtime_error("usage: quant_tool vec_dot TYPE N_PER_ROW W.bin ACT.bin OUT.f32 scalar|avx2");
    const auto act_type = optiq::vec_dot_type(*type);
    if (!act_type) throw std::runtime_error("no dot kernel for " + std::string(argv[2]));
    const std::string isa_name = argv[7];
    const optiq::DotIsa isa = isa_name == "avx2" ? optiq::DotIsa::Avx2 : optiq::DotIsa::Scalar;
    const optiq::VecDotFn dot = optiq::vec_dot_kernel(*type, isa);
    if (!dot) throw std::runtime_error("kernel " + isa_name + " is not available on this CPU");
    const std::vector<char> act = read_all(argv[5]);
    const size_t act_bytes = *optiq::ggml_row_bytes(*act_type, static_cast<uint64_t>(n));
    const size_t rows = in.size() / *row_bytes;
    if (act.size() != rows * act_bytes) throw std::runtime_error("ACT.bin does not hold one row per weight row");
    // Copies into vectors of the block's alignment (the files' bytes are read into chars).
    std::vector<float> out(rows);
    std::vector<uint64_t> w_row((*row_bytes + 7) / 8), a_row((act_bytes + 7) / 8);
    for (size_t r = 0; r < rows; ++r) {
      std::memcpy(w_row.data(), in.data() + r * *row_bytes, *row_bytes);
      std::memcpy(a_row.data(), act.data() + r * act_bytes, act_bytes);
      out[r] = dot(n, w_row.data(), a_row.data());
    }
    write_all(argv[6], out.data(), out.size() * sizeof(float));
  } else {
    throw std::runtime_error("unknown mode " + mode);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "quant_tool: %s\n", e.what());
    return 1;
  }
}
