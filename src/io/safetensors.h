// safetensors: u64 little-endian header length N, N bytes of JSON
//   {"__metadata__": {str: str}, "<name>": {"dtype": "BF16", "shape": [..], "data_offsets": [b, e]}}
// then the data buffer; offsets are relative to the buffer, shapes are row-major (the last
// dimension is contiguous, the reverse of ggml's order).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "util/mapped_file.h"

namespace optiq {

enum class SafetensorsDtype {
  BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64,
};
const char* safetensors_dtype_name(SafetensorsDtype d);
size_t safetensors_dtype_bytes(SafetensorsDtype d);

struct SafetensorsTensor {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<uint64_t> shape;  // row-major; {} for a scalar
  uint64_t begin = 0;           // byte range in the data buffer
  uint64_t end = 0;
  uint64_t n_elements() const;
};

struct SafetensorsContents {
  std::vector<SafetensorsTensor> tensors;  // in data-offset order
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // absolute file offset of the data buffer (8 + N)
};

// Largest header the reference implementation accepts.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// Parses and validates a safetensors image: header length sane, JSON valid, known dtypes,
// offsets in bounds, size = shape × dtype, tensors contiguous and covering the buffer with no
// overlap. Throws InputError naming the file, offset or tensor.
SafetensorsContents parse_safetensors(std::span<const std::byte> bytes, const std::string& file_label);

class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  const std::string& path() const { return file_.path(); }
  const SafetensorsContents& contents() const { return contents_; }
  const SafetensorsTensor* find(std::string_view name) const;
  std::span<const std::byte> data(const SafetensorsTensor& t) const;

 private:
  MappedFile file_;
  SafetensorsContents contents_;
};

struct SafetensorsDecl {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::F32;
  std::vector<uint64_t> shape;
};

// Streams tensors into `path` (atomically) in declaration order; fill(i, write) must pass
// exactly the tensor's bytes through write(data, n), in as many calls as it likes.
using SafetensorsWriteFn = std::function<void(const void*, size_t)>;
void write_safetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                       const std::vector<SafetensorsDecl>& tensors,
                       const std::function<void(size_t, const SafetensorsWriteFn&)>& fill);

}  // namespace optiq
