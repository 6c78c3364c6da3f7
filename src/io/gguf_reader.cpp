#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "io/gguf.h"
#include "util/error.h"

namespace optiq {
namespace {

constexpr size_t kMaxArrayDepth = 8;  // real files nest at most 2 deep


// Bounds-checked little-endian reader over the file image. Every read says what it was
// reading so an error names the field; counts are checked against the bytes that remain
// before anything is allocated, so a hostile count cannot cause a giant allocation.
class Cursor {
 public:
  Cursor(std::span<const std::byte> bytes, const std::string& file) : bytes_(bytes), file_(file) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  [[noreturn]] void fail(uint64_t at, const std::string& what) const {
    throw InputError(file_, at, what);
  }

  template <class T>
  T read(const char* field) {
    if (remaining() < sizeof(T))
      fail(pos_, std::string("file ends inside ") + field + " (need " +
                     std::to_string(sizeof(T)) + " bytes, " + std::to_string(remaining()) +
                     " left)");
    T x;
    std::memcpy(&x, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return x;
  }

  std::string read_string(const char* field) {
    uint64_t at = pos_;
    auto n = read<uint64_t>(field);
    if (n > remaining())
      fail(at, std::string(field) + " length " + std::to_string(n) + " exceeds the " +
                   std::to_string(remaining()) + " bytes left in the file");
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), n);
    pos_ += n;
    return s;
  }

  // A count of items that each occupy at least `min_item_bytes` must fit in what remains.
  void check_count(uint64_t at, uint64_t count, uint64_t min_item_bytes, const char* what) const {
    if (min_item_bytes && count > remaining() / min_item_bytes)
      fail(at, std::string(what) + " count " + std::to_string(count) +
                   " cannot fit in the " + std::to_string(remaining()) + " bytes left");
  }

 private:
  std::span<const std::byte> bytes_;
  const std::string& file_;
  uint64_t pos_ = 0;
};

// Smallest encoding of one value of a type, used to bound array counts.
uint64_t min_value_bytes(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8: case GgufValueType::I8: case GgufValueType::BOOL: return 1;
    case GgufValueType::U16: case GgufValueType::I16: return 2;
    case GgufValueType::U32: case GgufValueType::I32: case GgufValueType::F32: return 4;
    case GgufValueType::U64: case GgufValueType::I64: case GgufValueType::F64: return 8;
    case GgufValueType::STRING: return 8;
    case GgufValueType::ARRAY: return 12;
  }
  return 1;
}

GgufValueType read_value_type(Cursor& c, const char* field) {
  uint64_t at = c.pos();
  auto t = c.read<uint32_t>(field);
  if (t > static_cast<uint32_t>(GgufValueType::F64))
    c.fail(at, std::string(field) + " " + std::to_string(t) + " is not a GGUF value type (0..12)");
  return static_cast<GgufValueType>(t);
}

GgufValue read_value(Cursor& c, GgufValueType t, size_t depth) {
  switch (t) {
    case GgufValueType::U8: return GgufValue::of(c.read<uint8_t>("u8 value"));
    case GgufValueType::I8: return GgufValue::of(c.read<int8_t>("i8 value"));
    case GgufValueType::U16: return GgufValue::of(c.read<uint16_t>("u16 value"));
    case GgufValueType::I16: return GgufValue::of(c.read<int16_t>("i16 value"));
    case GgufValueType::U32: return GgufValue::of(c.read<uint32_t>("u32 value"));
    case GgufValueType::I32: return GgufValue::of(c.read<int32_t>("i32 value"));
    case GgufValueType::F32: return GgufValue::of(c.read<float>("f32 value"));
    case GgufValueType::U64: return GgufValue::of(c.read<uint64_t>("u64 value"));
    case GgufValueType::I64: return GgufValue::of(c.read<int64_t>("i64 value"));
    case GgufValueType::F64: return GgufValue::of(c.read<double>("f64 value"));
    case GgufValueType::BOOL: {
      uint64_t at = c.pos();
      auto b = c.read<uint8_t>("bool value");
      if (b > 1) c.fail(at, "bool value " + std::to_string(b) + " is neither 0 nor 1");
      return GgufValue::of(b == 1);
    }
    case GgufValueType::STRING: return GgufValue::string(c.read_string("string value"));
    case GgufValueType::ARRAY: {
      uint64_t at = c.pos();
      if (depth >= kMaxArrayDepth)
        c.fail(at, "arrays nested deeper than " + std::to_string(kMaxArrayDepth) + " levels");
      GgufValueType elem = read_value_type(c, "array element type");
      uint64_t count_at = c.pos();
      auto n = c.read<uint64_t>("array count");
      c.check_count(count_at, n, min_value_bytes(elem), "array element");
      std::vector<GgufValue> items;
      items.reserve(n);
      for (uint64_t i = 0; i < n; ++i) items.push_back(read_value(c, elem, depth + 1));
      return GgufValue::array(elem, std::move(items));
    }
  }
  c.fail(c.pos(), "unreachable value type");
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

void read_tensor_info(Cursor& c, GgufTensorInfo& t) {
  uint64_t at = c.pos();
  t.name = c.read_string("tensor name");
  if (t.name.empty()) c.fail(at, "tensor name is empty");
  uint64_t dims_at = c.pos();
  auto n_dims = c.read<uint32_t>("tensor n_dims");
  if (n_dims == 0 || n_dims > kGgmlMaxDims)
    c.fail(dims_at, "tensor '" + t.name + "' has " + std::to_string(n_dims) +
                        " dimensions (expected 1.." + std::to_string(kGgmlMaxDims) + ")");
  t.shape.resize(n_dims);
  uint64_t n = 1;
  for (auto& d : t.shape) {
    uint64_t d_at = c.pos();
    d = c.read<uint64_t>("tensor dimension");
    if (d > static_cast<uint64_t>(INT64_MAX) || (d != 0 && n > static_cast<uint64_t>(INT64_MAX) / d))
      c.fail(d_at, "tensor '" + t.name + "' element count overflows int64");
    n *= d;
  }
  t.n_elements = n;
  uint64_t type_at = c.pos();
  auto type_id = c.read<uint32_t>("tensor type");
  auto traits = ggml_type_traits(type_id);
  if (!traits)
    c.fail(type_at, "tensor '" + t.name + "' has unknown ggml type id " + std::to_string(type_id));
  t.type = traits->type;
  if (t.shape[0] % traits->block_elems != 0)
    c.fail(dims_at, "tensor '" + t.name + "' row length " + std::to_string(t.shape[0]) +
                        " is not a multiple of the " + std::string(traits->name) +
                        " block size " + std::to_string(traits->block_elems));
  const uint64_t blocks = n / traits->block_elems;
  if (blocks > static_cast<uint64_t>(INT64_MAX) / traits->block_bytes)
    c.fail(dims_at, "tensor '" + t.name + "' byte size overflows int64");
  t.n_bytes = blocks * traits->block_bytes;
  t.offset = c.read<uint64_t>("tensor offset");
}

}  // namespace

GgufContents parse_gguf(std::span<const std::byte> bytes, const std::string& file) {
  Cursor c(bytes, file);
  GgufContents g;
  if (bytes.size() < 4 || std::memcmp(bytes.data(), "GGUF", 4) != 0)
    c.fail(0, "not a GGUF file (magic is not \"GGUF\")");
  c.read<uint32_t>("magic");
  g.version = c.read<uint32_t>("version");
  if (g.version == 1)
    c.fail(4, "GGUF version 1 is not supported (32-bit counts); re-convert the model");
  if (g.version != 2 && g.version != 3) {
    if ((g.version & 0xffff) == 0 && (g.version == 0x02000000u || g.version == 0x03000000u))
      c.fail(4, "big-endian GGUF files are not supported");
    c.fail(4, "unsupported GGUF version " + std::to_string(g.version) + " (expected 2 or 3)");
  }
  uint64_t nt_at = c.pos();
  auto n_tensors = c.read<uint64_t>("tensor count");
  uint64_t nkv_at = c.pos();
  auto n_kv = c.read<uint64_t>("metadata count");
  // A KV is at least key length (8) + type (4) + a 1-byte value; a tensor info at least
  // name length (8) + n_dims (4) + one dim (8) + type (4) + offset (8).
  c.check_count(nkv_at, n_kv, 13, "metadata");
  std::unordered_set<std::string> keys;
  for (uint64_t i = 0; i < n_kv; ++i) {
    uint64_t at = c.pos();
    std::string key = c.read_string("metadata key");
    if (key.empty()) c.fail(at, "metadata key is empty");
    if (!keys.insert(key).second) c.fail(at, "duplicate metadata key '" + key + "'");
    GgufValueType t = read_value_type(c, "metadata value type");
    g.metadata.set(std::move(key), read_value(c, t, 0));
  }
  if (const GgufValue* a = g.metadata.find("general.alignment")) {
    auto* u = std::get_if<uint32_t>(&a->v);
    if (!u) c.fail(16, "general.alignment must be a u32, found " +
                           std::string(gguf_value_type_name(a->type())));
    if (*u == 0 || (*u & (*u - 1)) != 0)
      c.fail(16, "general.alignment " + std::to_string(*u) + " is not a power of two");
    if (*u > kGgufMaxAlignment)
      c.fail(16, "general.alignment " + std::to_string(*u) + " is larger than " +
                     std::to_string(kGgufMaxAlignment) + " bytes");
    g.alignment = *u;
  }
  c.check_count(nt_at, n_tensors, 32, "tensor");
  g.tensors.resize(n_tensors);
  std::unordered_set<std::string> names;
  std::vector<uint64_t> info_offsets(n_tensors);
  for (uint64_t i = 0; i < n_tensors; ++i) {
    info_offsets[i] = c.pos();
    read_tensor_info(c, g.tensors[i]);
    if (!names.insert(g.tensors[i].name).second)
      c.fail(info_offsets[i], "duplicate tensor name '" + g.tensors[i].name + "'");
  }
  g.data_offset = align_up(c.pos(), g.alignment);
  if (n_tensors > 0 && g.data_offset > bytes.size())
    c.fail(c.pos(), "file ends before its data section (which starts at offset " +
                        std::to_string(g.data_offset) + ")");
  const uint64_t data_size = bytes.size() > g.data_offset ? bytes.size() - g.data_offset : 0;

  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const auto& t = g.tensors[i];
    if (t.offset % g.alignment != 0)
      c.fail(info_offsets[i], "tensor '" + t.name + "' offset " + std::to_string(t.offset) +
                                  " is not a multiple of the alignment " +
                                  std::to_string(g.alignment));
    if (t.offset > data_size || t.n_bytes > data_size - t.offset)
      c.fail(info_offsets[i], "tensor '" + t.name + "' data [" + std::to_string(t.offset) + ", +" +
                                  std::to_string(t.n_bytes) + ") runs past the end of the " +
                                  std::to_string(data_size) + "-byte data section");
  }
  std::vector<size_t> order(n_tensors);
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return g.tensors[a].offset < g.tensors[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const auto& prev = g.tensors[order[k - 1]];
    const auto& cur = g.tensors[order[k]];
    if (prev.n_bytes > 0 && cur.n_bytes > 0 && prev.offset + prev.n_bytes > cur.offset)
      c.fail(info_offsets[order[k]], "tensor '" + cur.name + "' overlaps tensor '" + prev.name + "'");
  }
  return g;
}

GgufFile::GgufFile(const std::string& path) : file_(path), contents_(parse_gguf(file_.bytes(), path)) {}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  for (const auto& t : contents_.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::span<const std::byte> GgufFile::tensor_data(const GgufTensorInfo& t) const {
  return file_.bytes().subspan(contents_.data_offset + t.offset, t.n_bytes);
}

}  // namespace optiq
