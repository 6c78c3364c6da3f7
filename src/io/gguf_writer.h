// Streaming GGUF writer. The caller declares every tensor (name, type, shape) up front, the
// writer lays out the header and offsets, then asks for each tensor's bytes in order through a
// sink, so converting a model holds at most one chunk of one tensor in memory. The output
// appears under its name only when complete (see AtomicFile).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "util/atomic_file.h"

namespace optiq {

struct GgufTensorDecl {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<uint64_t> shape;  // ggml order, shape[0] = row length
};

// Receives one tensor's bytes; the writer checks that exactly the declared size arrived.
class GgufTensorSink {
 public:
  GgufTensorSink(AtomicFile& out, uint64_t expected) : out_(out), expected_(expected) {}
  void write(const void* data, size_t n);
  uint64_t written() const { return written_; }
  uint64_t expected() const { return expected_; }

 private:
  AtomicFile& out_;
  uint64_t expected_;
  uint64_t written_ = 0;
};

using GgufTensorFill = std::function<void(size_t tensor_index, GgufTensorSink& sink)>;

// Writes a GGUF v3 file. `general.alignment` in metadata, if present, sets the alignment
// (default 32). Throws InputError for an invalid declaration (duplicate or over-long name,
// too many dims, row length not a multiple of the block size) before creating any file.
void write_gguf(const std::string& path, const GgufMetadata& metadata,
                const std::vector<GgufTensorDecl>& tensors, const GgufTensorFill& fill);

// Serialised size of the header (magic through tensor infos), before alignment padding.
uint64_t gguf_header_bytes(const GgufMetadata& metadata, const std::vector<GgufTensorDecl>& tensors);

}  // namespace optiq
