#include "io/imatrix_file.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/mapped_file.h"

namespace optiq {
namespace {

constexpr std::string_view kSums = ".in_sum2";
constexpr std::string_view kCounts = ".counts";

// Bounds-checked little-endian reader over the legacy file.
class DatReader {
 public:
  DatReader(std::span<const std::byte> bytes, const std::string& path) : b_(bytes), path_(path) {}
  bool at_end() const { return pos_ == b_.size(); }
  size_t pos() const { return pos_; }
  int32_t i32(const char* what) {
    int32_t v;
    std::memcpy(&v, take(4, what), 4);
    return v;
  }
  const std::byte* take(uint64_t n, const char* what) {
    if (n > b_.size() - pos_)
      throw InputError(path_, pos_, std::string("file ends inside ") + what + " (need " + std::to_string(n) +
                                        " bytes, " + std::to_string(b_.size() - pos_) + " left)");
    const std::byte* p = b_.data() + pos_;
    pos_ += n;
    return p;
  }

 private:
  std::span<const std::byte> b_;
  const std::string& path_;
  size_t pos_ = 0;
};

Imatrix read_dat(std::span<const std::byte> bytes, const std::string& path) {
  DatReader r(bytes, path);
  Imatrix m;
  m.legacy = true;
  const int32_t n_entries = r.i32("the entry count");
  if (n_entries < 1) throw InputError(path, 0, "entry count " + std::to_string(n_entries) + " is not positive");
  for (int32_t i = 0; i < n_entries; ++i) {
    const size_t at = r.pos();
    const int32_t len = r.i32("an entry name length");
    if (len < 1) throw InputError(path, at, "entry name length " + std::to_string(len) + " is not positive");
    const auto* name_bytes = reinterpret_cast<const char*>(r.take(static_cast<uint64_t>(len), "an entry name"));
    std::string name(name_bytes, static_cast<size_t>(len));
    const int32_t ncall = r.i32("an entry's call count");
    const size_t at_nval = r.pos();
    const int32_t nval = r.i32("an entry's value count");
    if (nval < 1) throw InputError(path, at_nval, "entry '" + name + "' has " + std::to_string(nval) + " values");
    ImatrixEntry e;
    e.sums.resize(static_cast<size_t>(nval));
    std::memcpy(e.sums.data(), r.take(static_cast<uint64_t>(nval) * 4, "an entry's values"), e.sums.size() * 4);
    e.counts = {ncall};
    if (!m.entries.emplace(name, std::move(e)).second)
      throw InputError(path, at, "entry '" + name + "' appears twice");
  }
  if (!r.at_end()) {  // optional trailer
    m.chunk_count = r.i32("the chunk count");
    if (!r.at_end()) {
      const size_t at = r.pos();
      const int32_t len = r.i32("the dataset name length");
      if (len < 0) throw InputError(path, at, "dataset name length is negative");
      const auto* p = reinterpret_cast<const char*>(r.take(static_cast<uint64_t>(len), "the dataset name"));
      if (len > 0) m.datasets.emplace_back(p, static_cast<size_t>(len));
    }
  }
  return m;
}

Imatrix read_gguf(const std::string& path) {
  GgufFile file(path);
  Imatrix m;
  const GgufMetadata& md = file.metadata();
  if (const GgufValue* v = md.find("imatrix.datasets"))
    if (const GgufArray* a = v->as_array())
      for (const auto& item : a->items)
        if (const std::string* s = item.as_string()) m.datasets.push_back(*s);
  m.chunk_count = static_cast<int32_t>(md.get_int("imatrix.chunk_count").value_or(0));
  m.chunk_size = static_cast<int32_t>(md.get_int("imatrix.chunk_size").value_or(0));

  std::map<std::string, std::pair<const GgufTensorInfo*, const GgufTensorInfo*>> pairs;
  for (const auto& t : file.tensors()) {
    if (t.name.ends_with(kSums)) pairs[t.name.substr(0, t.name.size() - kSums.size())].first = &t;
    else if (t.name.ends_with(kCounts)) pairs[t.name.substr(0, t.name.size() - kCounts.size())].second = &t;
  }
  if (pairs.empty()) throw InputError(path, std::nullopt, "holds no .in_sum2/.counts tensors: not an importance matrix");
  for (const auto& [name, p] : pairs) {
    const auto [sums, counts] = p;
    if (!sums || !counts)
      throw InputError(path, std::nullopt, "'" + name + "' has " + (sums ? "in_sum2 but no counts" : "counts but no in_sum2"));
    if (sums->type != GgmlType::F32 || counts->type != GgmlType::F32)
      throw InputError(path, std::nullopt, "'" + name + "': in_sum2 and counts must be F32");
    const uint64_t n_mat = counts->n_elements;
    if (n_mat == 0 || sums->n_elements == 0 || sums->n_elements % n_mat != 0)
      throw InputError(path, std::nullopt, "'" + name + "': " + std::to_string(sums->n_elements) +
                                               " sums do not split into " + std::to_string(n_mat) + " matrices");
    ImatrixEntry e;
    e.sums.resize(sums->n_elements);
    std::memcpy(e.sums.data(), file.tensor_data(*sums).data(), e.sums.size() * 4);
    std::vector<float> c(n_mat);
    std::memcpy(c.data(), file.tensor_data(*counts).data(), c.size() * 4);
    for (float x : c) {
      if (!std::isfinite(x) || x < 0 || x > 9e18f)
        throw InputError(path, std::nullopt, "'" + name + "': count " + std::to_string(x) + " is not a token count");
      e.counts.push_back(std::lround(x));
    }
    m.entries.emplace(name, std::move(e));
  }
  return m;
}

}  // namespace

Imatrix read_imatrix_file(const std::string& path) {
  MappedFile f(path);
  const auto bytes = f.bytes();
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) return read_gguf(path);
  return read_dat(bytes, path);
}

void write_imatrix_gguf(const std::string& path, const Imatrix& m) {
  GgufMetadata md;
  md.set("general.type", GgufValue::string("imatrix"));
  std::vector<GgufValue> sets;
  for (const auto& d : m.datasets) sets.push_back(GgufValue::string(d));
  md.set("imatrix.datasets", GgufValue::array(GgufValueType::STRING, std::move(sets)));
  md.set("imatrix.chunk_count", GgufValue::of<uint32_t>(static_cast<uint32_t>(m.chunk_count)));
  md.set("imatrix.chunk_size", GgufValue::of<uint32_t>(static_cast<uint32_t>(m.chunk_size)));

  std::vector<GgufTensorDecl> decls;
  std::vector<const ImatrixEntry*> source;  // per declared tensor pair
  for (const auto& [name, e] : m.entries) {
    if (e.counts.empty() || e.sums.empty()) continue;
    const uint64_t n_mat = e.counts.size();
    decls.push_back({name + std::string(kSums), GgmlType::F32, {e.sums.size() / n_mat, n_mat}});
    decls.push_back({name + std::string(kCounts), GgmlType::F32, {1, n_mat}});
    source.push_back(&e);
  }
  write_gguf(path, md, decls, [&](size_t i, GgufTensorSink& sink) {
    const ImatrixEntry& e = *source[i / 2];
    if (i % 2 == 0) {
      sink.write(e.sums.data(), e.sums.size() * sizeof(float));
    } else {
      std::vector<float> counts(e.counts.begin(), e.counts.end());
      sink.write(counts.data(), counts.size() * sizeof(float));
    }
  });
}

void write_imatrix_dat(const std::string& path, const Imatrix& m) {
  AtomicFile out(path);
  auto put_i32 = [&](int32_t v) { out.write(&v, 4); };
  std::vector<const std::pair<const std::string, ImatrixEntry>*> kept;
  for (const auto& kv : m.entries)
    if (std::any_of(kv.second.counts.begin(), kv.second.counts.end(), [](int64_t c) { return c != 0; }))
      kept.push_back(&kv);
  const int64_t chunk = std::max<int32_t>(1, m.chunk_size);
  put_i32(static_cast<int32_t>(kept.size()));
  for (const auto* kv : kept) {
    const auto& [name, e] = *kv;
    put_i32(static_cast<int32_t>(name.size()));
    out.write(name.data(), name.size());
    // The format stores means scaled by a call count: chunks seen, rounded up.
    const int64_t max_count = *std::max_element(e.counts.begin(), e.counts.end());
    const auto ncall = static_cast<int32_t>((max_count + chunk - 1) / chunk);
    put_i32(ncall);
    put_i32(static_cast<int32_t>(e.sums.size()));
    const size_t per_mat = e.sums.size() / e.counts.size();
    std::vector<float> values(e.sums.size());
    for (size_t i = 0; i < values.size(); ++i) {
      float count = static_cast<float>(e.counts[i / per_mat]);
      float value = e.sums[i];
      if (count == 0.0f) value = count = 1.0f;  // a matrix that saw no tokens: neutral weights
      values[i] = (value / count) * static_cast<float>(ncall);
    }
    out.write(values.data(), values.size() * sizeof(float));
  }
  put_i32(m.chunk_count);
  const std::string dataset = m.datasets.empty() ? "" : m.datasets.back();
  put_i32(static_cast<int32_t>(dataset.size()));
  out.write(dataset.data(), dataset.size());
  out.commit();
}

std::map<std::string, std::vector<float>> imatrix_importance(const Imatrix& m) {
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, e] : m.entries) {
    std::vector<float>& w = out[name];
    w.resize(e.sums.size());
    if (m.legacy) {
      const int64_t ncall = e.counts.empty() ? 0 : e.counts[0];
      for (size_t i = 0; i < w.size(); ++i) w[i] = ncall > 0 ? e.sums[i] / static_cast<float>(ncall) : e.sums[i];
      continue;
    }
    const size_t per_mat = e.sums.size() / e.counts.size();
    for (size_t j = 0; j < e.counts.size(); ++j) {
      const auto count = static_cast<float>(e.counts[j]);
      for (size_t i = 0; i < per_mat; ++i)
        w[j * per_mat + i] = count > 0.0f ? e.sums[j * per_mat + i] / count : 1.0f;
    }
  }
  return out;
}

}  // namespace optiq
