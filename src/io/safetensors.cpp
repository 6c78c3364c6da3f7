#include "io/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "util/atomic_file.h"
#include "util/error.h"

namespace optiq {
namespace {

struct DtypeInfo {
  SafetensorsDtype dtype;
  const char* name;
  size_t bytes;
};
constexpr DtypeInfo kDtypes[] = {
    {SafetensorsDtype::BOOL, "BOOL", 1},       {SafetensorsDtype::U8, "U8", 1},
    {SafetensorsDtype::I8, "I8", 1},           {SafetensorsDtype::F8_E5M2, "F8_E5M2", 1},
    {SafetensorsDtype::F8_E4M3, "F8_E4M3", 1}, {SafetensorsDtype::I16, "I16", 2},
    {SafetensorsDtype::U16, "U16", 2},         {SafetensorsDtype::F16, "F16", 2},
    {SafetensorsDtype::BF16, "BF16", 2},       {SafetensorsDtype::I32, "I32", 4},
    {SafetensorsDtype::U32, "U32", 4},         {SafetensorsDtype::F32, "F32", 4},
    {SafetensorsDtype::F64, "F64", 8},         {SafetensorsDtype::I64, "I64", 8},
    {SafetensorsDtype::U64, "U64", 8},
};

const DtypeInfo& info(SafetensorsDtype d) {
  for (const auto& i : kDtypes)
    if (i.dtype == d) return i;
  throw std::logic_error("invalid SafetensorsDtype");
}

}  // namespace

const char* safetensors_dtype_name(SafetensorsDtype d) { return info(d).name; }
size_t safetensors_dtype_bytes(SafetensorsDtype d) { return info(d).bytes; }

uint64_t SafetensorsTensor::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

SafetensorsContents parse_safetensors(std::span<const std::byte> bytes, const std::string& file) {
  auto fail = [&](std::optional<uint64_t> at, const std::string& what) -> void {
    throw InputError(file, at, what);
  };
  if (bytes.size() < 8) fail(0, "too small for a safetensors file (no 8-byte header length)");
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  if (n > kSafetensorsMaxHeaderBytes)
    fail(0, "header length " + std::to_string(n) + " exceeds the 100 MB limit");
  if (n > bytes.size() - 8)
    fail(0, "header length " + std::to_string(n) + " runs past the end of the " +
                std::to_string(bytes.size()) + "-byte file");
  const char* text = reinterpret_cast<const char*>(bytes.data() + 8);
  if (n < 2 || text[0] != '{') fail(8, "header is not a JSON object");

  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text, text + n);
  } catch (const nlohmann::json::parse_error& e) {
    fail(8 + e.byte, std::string("header is not valid JSON: ") + e.what());
  } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
    fail(8, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(8, "header is not a JSON object");

  SafetensorsContents c;
  c.data_offset = 8 + n;
  const uint64_t buffer_bytes = bytes.size() - c.data_offset;
  for (auto& item : header.items()) {
    const std::string& name = item.key();
    const nlohmann::json& entry = item.value();
    if (name == "__metadata__") {
      if (!entry.is_object()) fail(std::nullopt, "__metadata__ is not an object of strings");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string()) fail(std::nullopt, "__metadata__ value '" + k + "' is not a string");
        c.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) { fail(std::nullopt, "tensor '" + name + "': " + what); };
    if (!entry.is_object()) bad("entry is not an object");
    auto dt = entry.find("dtype");
    auto shape = entry.find("shape");
    auto offs = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) bad("missing string field 'dtype'");
    if (shape == entry.end() || !shape->is_array()) bad("missing array field 'shape'");
    if (offs == entry.end() || !offs->is_array() || offs->size() != 2)
      bad("'data_offsets' must be [begin, end]");

    SafetensorsTensor t;
    t.name = name;
    const std::string dtype_name = dt->get<std::string>();
    const DtypeInfo* di = nullptr;
    for (const auto& i : kDtypes)
      if (dtype_name == i.name) di = &i;
    if (!di) bad("unknown dtype '" + dtype_name + "'");
    t.dtype = di->dtype;
    uint64_t elems = 1;
    for (const auto& d : *shape) {
      if (!d.is_number_unsigned()) bad("shape entries must be non-negative integers");
      uint64_t x = d.get<uint64_t>();
      if (x != 0 && elems > UINT64_MAX / 8 / x) bad("shape is too large");
      elems *= x;
      t.shape.push_back(x);
    }
    for (const auto& o : *offs)
      if (!o.is_number_unsigned()) bad("data_offsets must be non-negative integers");
    t.begin = (*offs)[0].get<uint64_t>();
    t.end = (*offs)[1].get<uint64_t>();
    if (t.begin > t.end) bad("data_offsets begin > end");
    if (t.end > buffer_bytes)
      bad("data_offsets end " + std::to_string(t.end) + " is past the " +
          std::to_string(buffer_bytes) + "-byte data buffer");
    if (t.end - t.begin != elems * di->bytes)
      bad("data size " + std::to_string(t.end - t.begin) + " bytes does not match shape × " +
          dtype_name + " = " + std::to_string(elems * di->bytes) + " bytes");
    c.tensors.push_back(std::move(t));
  }
  std::sort(c.tensors.begin(), c.tensors.end(),
            [](const auto& a, const auto& b) { return a.begin != b.begin ? a.begin < b.begin : a.end < b.end; });
  uint64_t expected = 0;
  for (const auto& t : c.tensors) {
    if (t.begin < expected) fail(std::nullopt, "tensor '" + t.name + "' overlaps the previous tensor");
    if (t.begin > expected)
      fail(std::nullopt, "gap in the data buffer before tensor '" + t.name + "' (bytes " +
                             std::to_string(expected) + ".." + std::to_string(t.begin) + ")");
    expected = t.end;
  }
  if (expected != buffer_bytes)
    fail(std::nullopt, "tensors cover " + std::to_string(expected) + " of the " +
                           std::to_string(buffer_bytes) + " data bytes");
  return c;
}

SafetensorsFile::SafetensorsFile(const std::string& path)
    : file_(path), contents_(parse_safetensors(file_.bytes(), path)) {}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  for (const auto& t : contents_.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::span<const std::byte> SafetensorsFile::data(const SafetensorsTensor& t) const {
  return file_.bytes().subspan(contents_.data_offset + t.begin, t.end - t.begin);
}

void write_safetensors(const std::string& path, const std::map<std::string, std::string>& metadata,
                       const std::vector<SafetensorsDecl>& tensors,
                       const std::function<void(size_t, const SafetensorsWriteFn&)>& fill) {
  // nlohmann::ordered_json keeps tensors in declaration order, matching their data order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint64_t> sizes;
  std::unordered_set<std::string> names;
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      throw InputError("tensor '" + t.name + "'", std::nullopt, "name is reserved or declared twice");
    uint64_t n = safetensors_dtype_bytes(t.dtype);
    for (uint64_t d : t.shape) n *= d;
    header[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + n}}};
    sizes.push_back(n);
    offset += n;
  }
  std::string text = header.dump();
  // Pad with spaces so the data buffer starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');

  AtomicFile out(path);
  uint64_t n = text.size();
  out.write(&n, 8);
  out.write(text.data(), text.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    uint64_t got = 0;
    fill(i, [&](const void* data, size_t k) {
      if (k > sizes[i] - got)
        throw std::logic_error("safetensors writer: more bytes than tensor '" + tensors[i].name +
                               "' holds");
      out.write(data, k);
      got += k;
    });
    if (got != sizes[i])
      throw std::logic_error("safetensors writer: tensor '" + tensors[i].name + "' got " +
                             std::to_string(got) + " of " + std::to_string(sizes[i]) + " bytes");
  }
  out.commit();
}

}  // namespace optiq
