// A model as optiq reads it, whatever it was stored as: GGUF metadata (llama.cpp's keys) plus
// tensors under their GGUF names, each a view into a memory-mapped file. A .gguf file maps
// one to one; a Hugging Face folder (config.json + safetensors) is translated on the fly,
// with the per-tensor fix-ups llama.cpp's converter applies recorded as a TensorTransform
// and applied only when the data is read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace optiq {

struct TensorTransform {
  // > 0: rows reordered the way llama.cpp's converter undoes HF's rotary layout for q/k
  // projections, with this many heads: HF row h*d + j*d/2 + i becomes row h*d + 2*i + j
  // (d = rows / heads). Applies to the outermost dimension (rows of a matrix, bias elements).
  uint32_t rope_permute_heads = 0;
  // Added to every element: Gemma's RMSNorm scales by (1 + w), llama.cpp's by w.
  float add = 0.0f;
  bool identity() const { return rope_permute_heads == 0 && add == 0.0f; }
};

struct SourceTensor {
  std::string name;               // GGUF name, e.g. "blk.0.attn_q.weight"
  GgmlType type = GgmlType::F32;  // type of the stored bytes
  std::vector<uint64_t> shape;    // ggml order: shape[0] is the row length
  std::span<const std::byte> data;
  uint64_t file_offset = 0;  // absolute offset of data in its file (0 for generated tensors)
  std::string origin;        // where it came from, for messages: "file:name"
  TensorTransform transform;

  uint64_t n_elements() const;
  // Rows as conversion streams them: the outermost dimension for >= 2-D tensors' rows of
  // shape[0] elements; every element is its own row for a 1-D tensor.
  uint64_t row_elems() const { return shape.size() == 1 ? 1 : shape[0]; }
  uint64_t n_rows() const { return n_elements() / row_elems(); }
};

// Reads rows [row0, row0 + n_rows) as f32 with the transform applied; out holds
// n_rows × row_elems() floats. Quantized types are dequantized; a type optiq cannot
// dequantize throws InputError naming the tensor.
void read_rows_f32(const SourceTensor& t, uint64_t row0, uint64_t n_rows, float* out);

// Copies rows [row0, row0 + n_rows) in their stored type (any type), reordered as
// read_rows_f32 reorders them; out holds n_rows × (bytes of one row). A transform that adds a
// constant cannot apply to stored bytes: read such tensors with read_rows_f32.
void read_rows_raw(const SourceTensor& t, uint64_t row0, uint64_t n_rows, std::byte* out);

enum class SourceKind { Gguf, HuggingFace };

class ModelSource {
 public:
  SourceKind kind = SourceKind::Gguf;
  std::string path;       // the .gguf file or the model folder
  GgufMetadata metadata;  // llama.cpp's keys (translated from config.json for HF)
  std::vector<SourceTensor> tensors;

  const SourceTensor* find(std::string_view name) const;
  std::string architecture() const;  // general.architecture, "" if missing

  // Files and buffers the tensor views point into.
  std::vector<std::shared_ptr<const void>> storage;
};

// Opens a .gguf file or a Hugging Face model folder. Throws InputError with the file and
// field at fault; an unknown architecture lists the supported ones.
ModelSource open_model_source(const std::filesystem::path& path);

}  // namespace optiq
