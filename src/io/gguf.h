// GGUF: the single-file model format llama.cpp reads. Layout (all little-endian):
//   "GGUF" u32 version (2|3) u64 n_tensors u64 n_kv
//   n_kv × (string key, u32 value_type, value)
//   n_tensors × (string name, u32 n_dims, n_dims × u64 ne, u32 ggml_type, u64 offset)
//   zero padding to `general.alignment` (default 32), then the tensor data section;
//   each tensor's offset is relative to the data section and a multiple of the alignment.
// Strings are u64 length + bytes (no terminator). Arrays are u32 element type + u64 count +
// elements, and may nest.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "io/ggml_type.h"
#include "util/mapped_file.h"

namespace optiq {

// On-disk value type ids; equal to the index of the matching alternative in GgufValue::Storage.
enum class GgufValueType : uint32_t {
  U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8,
  ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);

struct GgufValue;

struct GgufArray {
  GgufValueType elem_type = GgufValueType::U8;
  std::vector<GgufValue> items;  // every item has type elem_type
};

struct GgufValue {
  using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                               std::string, GgufArray, uint64_t, int64_t, double>;
  Storage v;

  GgufValue() = default;
  template <class T>
  static GgufValue of(T x) {
    GgufValue r;
    r.v.emplace<T>(std::move(x));
    return r;
  }
  static GgufValue string(std::string s) { return of<std::string>(std::move(s)); }
  static GgufValue array(GgufValueType elem_type, std::vector<GgufValue> items) {
    return of<GgufArray>(GgufArray{elem_type, std::move(items)});
  }
  template <class T>
  static GgufValue array_of(const std::vector<T>& xs);  // array of one scalar type

  GgufValueType type() const { return static_cast<GgufValueType>(v.index()); }

  // Lenient readers: any integer type for as_int, any numeric type for as_double.
  std::optional<int64_t> as_int() const;
  std::optional<double> as_double() const;
  const std::string* as_string() const { return std::get_if<std::string>(&v); }
  const GgufArray* as_array() const { return std::get_if<GgufArray>(&v); }
  std::optional<bool> as_bool() const;

  // Human-readable, arrays abbreviated after `max_items` items.
  std::string to_display(size_t max_items = 8) const;

  bool operator==(const GgufValue& other) const;
};

bool operator==(const GgufArray& a, const GgufArray& b);

// Key/value metadata in file order (order is kept so a file round-trips byte for byte).
class GgufMetadata {
 public:
  const GgufValue* find(std::string_view key) const;
  void set(std::string key, GgufValue value);  // replaces in place, or appends
  bool erase(std::string_view key);
  const std::vector<std::pair<std::string, GgufValue>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }

  std::optional<std::string> get_string(std::string_view key) const;
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_double(std::string_view key) const;

 private:
  std::vector<std::pair<std::string, GgufValue>> entries_;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> shape;  // ggml order: shape[0] is the row length (contiguous dim)
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;  // bytes from the start of the data section
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
};

inline constexpr uint32_t kGgufDefaultAlignment = 32;
// Real files use 32 or 64; a huge power of two would make every tensor carry gigabytes of
// padding on a rewrite, so larger values are rejected.
inline constexpr uint32_t kGgufMaxAlignment = 1u << 20;
inline constexpr size_t kGgmlMaxDims = 4;
inline constexpr size_t kGgmlMaxNameBytes = 63;  // ggml keeps names in char[64]

// Everything a GGUF header says. Parsing validates it completely against the file size.
struct GgufContents {
  uint32_t version = 3;
  GgufMetadata metadata;
  std::vector<GgufTensorInfo> tensors;
  uint32_t alignment = kGgufDefaultAlignment;
  uint64_t data_offset = 0;  // absolute file offset of the data section
};

// Parses and validates a whole GGUF image. Throws InputError(file_label, offset, what) on any
// violation; never reads out of bounds and never allocates more than the input could describe.
GgufContents parse_gguf(std::span<const std::byte> bytes, const std::string& file_label);

// A memory-mapped, validated GGUF file.
class GgufFile {
 public:
  explicit GgufFile(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint64_t file_size() const { return file_.size(); }
  const GgufContents& contents() const { return contents_; }
  const GgufMetadata& metadata() const { return contents_.metadata; }
  const std::vector<GgufTensorInfo>& tensors() const { return contents_.tensors; }
  const GgufTensorInfo* find_tensor(std::string_view name) const;
  std::span<const std::byte> tensor_data(const GgufTensorInfo& t) const;

 private:
  MappedFile file_;
  GgufContents contents_;
};

template <class T>
GgufValue GgufValue::array_of(const std::vector<T>& xs) {
  std::vector<GgufValue> items;
  items.reserve(xs.size());
  for (const T& x : xs) items.push_back(of<T>(x));
  return array(of<T>(T{}).type(), std::move(items));
}

}  // namespace optiq
