#include "export/convert.h"

#include <filesystem>
#include <vector>

#include "io/gguf_writer.h"
#include "quant/float16.h"
#include "quant/quantize.h"
#include "util/error.h"
#include "util/progress.h"

namespace optiq {

GgmlType float_outtype_for(const SourceTensor& t, GgmlType outtype) {
  if (t.shape.size() <= 1 || t.name.ends_with("_norm.weight") || !t.name.ends_with(".weight"))
    return GgmlType::F32;
  return outtype;
}

uint32_t llama_file_type_for(GgmlType outtype) {
  switch (outtype) {
    case GgmlType::F32: return 0;   // LLAMA_FTYPE_ALL_F32
    case GgmlType::F16: return 1;   // LLAMA_FTYPE_MOSTLY_F16
    case GgmlType::BF16: return 32; // LLAMA_FTYPE_MOSTLY_BF16
    default: throw std::logic_error("llama_file_type_for: not a float type");
  }
}

namespace {

constexpr uint64_t kChunkFloats = 1u << 20;  // rows are converted ~4 MB of f32 at a time

void convert_tensor(const SourceTensor& t, GgmlType out_type, GgufTensorSink& sink,
                    const std::function<void(uint64_t)>& on_bytes) {
  if (t.type == out_type && t.transform.identity()) {
    // Same type, no fix-up: copy the bytes as they are, in slices so progress moves.
    constexpr size_t kSlice = 16u << 20;
    for (size_t off = 0; off < t.data.size(); off += kSlice) {
      const size_t n = std::min(kSlice, t.data.size() - off);
      sink.write(t.data.data() + off, n);
      on_bytes(n);
    }
    return;
  }
  const uint64_t width = t.row_elems();
  const uint64_t rows_per_chunk = std::max<uint64_t>(1, kChunkFloats / width);
  std::vector<float> f32(rows_per_chunk * width);
  std::vector<uint16_t> half(out_type == GgmlType::F32 ? 0 : f32.size());
  for (uint64_t r = 0; r < t.n_rows(); r += rows_per_chunk) {
    const uint64_t n_rows = std::min(rows_per_chunk, t.n_rows() - r);
    const uint64_t n = n_rows * width;
    read_rows_f32(t, r, n_rows, f32.data());
    switch (out_type) {
      case GgmlType::F32: sink.write(f32.data(), n * sizeof(float)); break;
      case GgmlType::F16:
        f32_to_f16_n(f32.data(), half.data(), n);
        sink.write(half.data(), n * sizeof(uint16_t));
        break;
      case GgmlType::BF16:
        f32_to_bf16_n(f32.data(), half.data(), n);
        sink.write(half.data(), n * sizeof(uint16_t));
        break;
      default: throw std::logic_error("convert_tensor: not a float type");
    }
    on_bytes(n_rows * ggml_row_bytes(t.type, width).value_or(0));
  }
}

}  // namespace

ConvertReport convert_model(const ModelSource& source, const ConvertOptions& options) {
  if (options.outtype != GgmlType::F32 && options.outtype != GgmlType::F16 &&
      options.outtype != GgmlType::BF16)
    throw InputError("--outtype", std::nullopt, "must be f32, f16 or bf16");

  std::vector<GgufTensorDecl> decls;
  uint64_t source_bytes = 0;
  ConvertReport report;
  for (const auto& t : source.tensors) {
    const bool is_float = t.type == GgmlType::F32 || t.type == GgmlType::F16 || t.type == GgmlType::BF16;
    GgmlType out = float_outtype_for(t, options.outtype);
    if (!is_float && out != t.type && !quantize_supported(t.type))
      throw InputError(t.origin, std::nullopt,
                       "is stored as " + std::string(ggml_type_name(t.type)) +
                           ", which optiq cannot dequantize to " + std::string(ggml_type_name(out)));
    if (!ggml_row_bytes(out, t.shape[0]))
      throw InputError(t.origin, std::nullopt, "row length does not fit " + std::string(ggml_type_name(out)));
    decls.push_back({t.name, out, t.shape});
    report.tensor_bytes += t.n_elements() / ggml_traits(out).block_elems * ggml_traits(out).block_bytes;
    source_bytes += t.data.size();
    report.n_params += t.n_elements();
  }

  GgufMetadata metadata = source.metadata;
  metadata.set("general.file_type", GgufValue::of<uint32_t>(llama_file_type_for(options.outtype)));
  metadata.set("general.quantization_version", GgufValue::of<uint32_t>(2));

  ProgressBar bar("convert", source_bytes, 1e6, "MB");
  uint64_t done = 0;
  write_gguf(options.output_path, metadata, decls, [&](size_t i, GgufTensorSink& sink) {
    convert_tensor(source.tensors[i], decls[i].type, sink, [&](uint64_t n) {
      done += n;
      bar.update(done);
    });
  });
  bar.finish();
  report.seconds = bar.elapsed_seconds();
  report.n_tensors = decls.size();
  report.bytes_written = std::filesystem::file_size(options.output_path);
  return report;
}

}  // namespace optiq
