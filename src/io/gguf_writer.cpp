#include "io/gguf_writer.h"

#include <unordered_set>

#include "util/error.h"

namespace optiq {
namespace {

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Serialises header pieces into a growable byte buffer (the header is small: metadata plus
// tensor infos, at most a few MB for a 150K-token vocabulary).
class HeaderBuffer {
 public:
  template <class T>
  void put(T x) {
    const auto* p = reinterpret_cast<const std::byte*>(&x);
    bytes_.insert(bytes_.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    bytes_.insert(bytes_.end(), p, p + s.size());
  }
  void put_value(const GgufValue& v) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(x);
          } else if constexpr (std::is_same_v<T, GgufArray>) {
            put<uint32_t>(static_cast<uint32_t>(x.elem_type));
            put<uint64_t>(x.items.size());
            for (const auto& item : x.items) put_value(item);
          } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(x ? 1 : 0);
          } else {
            put<T>(x);
          }
        },
        v.v);
  }
  const std::vector<std::byte>& bytes() const { return bytes_; }

 private:
  std::vector<std::byte> bytes_;
};

void check_array_types(const std::string& key, const GgufValue& v) {
  const GgufArray* a = v.as_array();
  if (!a) return;
  for (const auto& item : a->items) {
    if (item.type() != a->elem_type)
      throw InputError("metadata", std::nullopt,
                       "array '" + key + "' declares " + gguf_value_type_name(a->elem_type) +
                           " elements but holds a " + gguf_value_type_name(item.type()));
    check_array_types(key, item);
  }
}

uint32_t alignment_of(const GgufMetadata& metadata) {
  const GgufValue* a = metadata.find("general.alignment");
  if (!a) return kGgufDefaultAlignment;
  auto* u = std::get_if<uint32_t>(&a->v);
  if (!u || *u == 0 || (*u & (*u - 1)) != 0 || *u > kGgufMaxAlignment)
    throw InputError("metadata", std::nullopt,
                     "general.alignment must be a u32 power of two of at most " +
                         std::to_string(kGgufMaxAlignment));
  return *u;
}

std::vector<uint64_t> validate_and_size(const std::vector<GgufTensorDecl>& tensors) {
  std::unordered_set<std::string> names;
  std::vector<uint64_t> sizes;
  for (const auto& t : tensors) {
    auto fail = [&](const std::string& what) {
      throw InputError("tensor '" + t.name + "'", std::nullopt, what);
    };
    if (t.name.empty() || t.name.size() > kGgmlMaxNameBytes)
      fail("name must be 1.." + std::to_string(kGgmlMaxNameBytes) + " bytes (ggml's limit)");
    if (!names.insert(t.name).second) fail("declared twice");
    if (t.shape.empty() || t.shape.size() > kGgmlMaxDims)
      fail("has " + std::to_string(t.shape.size()) + " dimensions (ggml allows 1..4)");
    uint64_t n = 1;
    for (uint64_t d : t.shape) n *= d;
    auto row = ggml_row_bytes(t.type, t.shape[0]);
    if (!row)
      fail("row length " + std::to_string(t.shape[0]) + " is not a multiple of the " +
           std::string(ggml_type_name(t.type)) + " block size");
    sizes.push_back(n / ggml_traits(t.type).block_elems * ggml_traits(t.type).block_bytes);
  }
  return sizes;
}

HeaderBuffer build_header(const GgufMetadata& metadata, const std::vector<GgufTensorDecl>& tensors,
                          const std::vector<uint64_t>& sizes, uint32_t alignment) {
  HeaderBuffer h;
  h.put<uint32_t>(0x46554747);  // "GGUF" read as a little-endian u32
  h.put<uint32_t>(3);
  h.put<uint64_t>(tensors.size());
  h.put<uint64_t>(metadata.size());
  for (const auto& [key, value] : metadata.entries()) {
    check_array_types(key, value);
    h.put_string(key);
    h.put<uint32_t>(static_cast<uint32_t>(value.type()));
    h.put_value(value);
  }
  uint64_t offset = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    h.put_string(t.name);
    h.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (uint64_t d : t.shape) h.put<uint64_t>(d);
    h.put<uint32_t>(static_cast<uint32_t>(t.type));
    h.put<uint64_t>(offset);
    offset = align_up(offset + sizes[i], alignment);
  }
  return h;
}

}  // namespace

void GgufTensorSink::write(const void* data, size_t n) {
  if (n > expected_ - written_)
    throw std::logic_error("GGUF tensor sink: more bytes than the tensor's declared size");
  out_.write(data, n);
  written_ += n;
}

uint64_t gguf_header_bytes(const GgufMetadata& metadata, const std::vector<GgufTensorDecl>& tensors) {
  return build_header(metadata, tensors, validate_and_size(tensors), alignment_of(metadata))
      .bytes()
      .size();
}

void write_gguf(const std::string& path, const GgufMetadata& metadata,
                const std::vector<GgufTensorDecl>& tensors, const GgufTensorFill& fill) {
  const uint32_t alignment = alignment_of(metadata);
  const std::vector<uint64_t> sizes = validate_and_size(tensors);
  const HeaderBuffer header = build_header(metadata, tensors, sizes, alignment);

  AtomicFile out(path);
  out.write(header.bytes().data(), header.bytes().size());
  out.write_zeros(align_up(out.tell(), alignment) - out.tell());
  for (size_t i = 0; i < tensors.size(); ++i) {
    GgufTensorSink sink(out, sizes[i]);
    fill(i, sink);
    if (sink.written() != sizes[i])
      throw std::logic_error("GGUF writer: tensor '" + tensors[i].name + "' got " +
                             std::to_string(sink.written()) + " of " + std::to_string(sizes[i]) +
                             " bytes");
    // Pad after every tensor, the last included, as llama.cpp and gguf-py do.
    out.write_zeros(align_up(out.tell(), alignment) - out.tell());
  }
  out.commit();
}

}  // namespace optiq
