// libFuzzer target for the GGUF reader. A malformed file must end in InputError; anything else
// (another exception, a sanitizer report, an allocation over -rss_limit_mb) is a bug. A file
// that parses is held to what parse_gguf promises its callers, then written back with
// write_gguf and re-read, which checks the writer against the reader on hostile metadata.
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "fuzz_check.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "util/error.h"

namespace optiq::fuzz {
namespace {

using u128 = unsigned __int128;

void check_contents(const GgufContents& g, std::span<const std::byte> in) {
  require(g.alignment != 0 && (g.alignment & (g.alignment - 1)) == 0, "alignment not a power of two");
  require(g.data_offset % g.alignment == 0, "data section not aligned");
  std::vector<const GgufTensorInfo*> by_offset;
  for (const auto& t : g.tensors) {
    const std::string name = "tensor '" + t.name + "': ";
    require(!t.shape.empty() && t.shape.size() <= kGgmlMaxDims, name + "bad dimension count");
    u128 n = 1;
    for (uint64_t d : t.shape) n = std::min<u128>(n * d, u128(1) << 64);
    require(n <= INT64_MAX && n == t.n_elements, name + "n_elements is not the product of the shape");
    const GgmlTypeTraits& traits = ggml_traits(t.type);
    require(t.shape[0] % traits.block_elems == 0, name + "row length not a whole number of blocks");
    // Computed without wrap-around: a wrapped n_bytes would pass the bounds checks with a size
    // far smaller than the tensor its shape describes.
    const u128 n_bytes = u128(t.n_elements / traits.block_elems) * traits.block_bytes;
    require(n_bytes == t.n_bytes, name + "n_bytes " + std::to_string(t.n_bytes) +
                                      " is not shape x type size (it wrapped around 2^64)");
    require(t.offset % g.alignment == 0, name + "offset not aligned");
    require(u128(g.data_offset) + t.offset + t.n_bytes <= in.size(),
            name + "data range [data_offset " + std::to_string(g.data_offset) + " + " +
                std::to_string(t.offset) + ", +" + std::to_string(t.n_bytes) +
                ") lies outside the " + std::to_string(in.size()) + "-byte file");
    touch(in.subspan(g.data_offset + t.offset, t.n_bytes));
    if (t.n_bytes > 0) by_offset.push_back(&t);
  }
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    require(by_offset[i - 1]->offset + by_offset[i - 1]->n_bytes <= by_offset[i]->offset,
            "tensors '" + by_offset[i - 1]->name + "' and '" + by_offset[i]->name + "' overlap");
}

// Bitwise for floats: a NaN read from a file must be written back unchanged, yet NaN != NaN.
bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.v.index() != b.v.index()) return false;
  return std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        const T& y = std::get<T>(b.v);
        if constexpr (std::is_floating_point_v<T>) {
          return std::memcmp(&x, &y, sizeof x) == 0;
        } else if constexpr (std::is_same_v<T, GgufArray>) {
          if (x.elem_type != y.elem_type || x.items.size() != y.items.size()) return false;
          for (size_t i = 0; i < x.items.size(); ++i)
            if (!same_value(x.items[i], y.items[i])) return false;
          return true;
        } else {
          return x == y;
        }
      },
      a.v);
}

std::string g_scratch_dir;

void remove_scratch() {
  std::error_code ec;
  std::filesystem::remove_all(g_scratch_dir, ec);
}

// One scratch directory per process under $TMPDIR, so parallel fuzzers never share a file.
const std::string& scratch_path() {
  static const std::string path = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/optiq-fuzz-gguf-XXXXXX";
    require(::mkdtemp(dir.data()) != nullptr, "cannot create a scratch directory " + dir);
    g_scratch_dir = dir;
    std::atexit(remove_scratch);
    return dir + "/roundtrip.gguf";
  }();
  return path;
}

// Alignment padding the writer emits before the data section and after each tensor.
constexpr uint64_t kMaxRoundTripPadding = 1 << 20;

void round_trip(const GgufContents& g, std::span<const std::byte> in) {
  // A 200-byte file may ask for 2 GiB alignment; writing that much padding would test the
  // disk, not the code, and trip -timeout.
  if (u128(g.tensors.size() + 1) * g.alignment > kMaxRoundTripPadding) return;
  std::vector<GgufTensorDecl> decls;
  for (const auto& t : g.tensors) decls.push_back({t.name, t.type, t.shape});
  const std::string& path = scratch_path();
  try {
    write_gguf(path, g.metadata, decls, [&](size_t i, GgufTensorSink& sink) {
      sink.write(in.data() + g.data_offset + g.tensors[i].offset, g.tensors[i].n_bytes);
    });
  } catch (const InputError&) {
    return;  // the writer enforces ggml's limits (63-byte names) that the reader tolerates
  }
  std::optional<GgufFile> out;
  try {
    out.emplace(path);
  } catch (const InputError& e) {
    require(false, std::string("parse_gguf rejects what write_gguf wrote: ") + e.what());
  }
  const auto& kv_in = g.metadata.entries();
  const auto& kv_out = out->metadata().entries();
  require(kv_in.size() == kv_out.size(), "round trip changed the metadata count");
  for (size_t i = 0; i < kv_in.size(); ++i)
    require(kv_in[i].first == kv_out[i].first && same_value(kv_in[i].second, kv_out[i].second),
            "round trip changed metadata '" + kv_in[i].first + "'");
  require(g.tensors.size() == out->tensors().size(), "round trip changed the tensor count");
  for (size_t i = 0; i < g.tensors.size(); ++i) {
    const GgufTensorInfo& a = g.tensors[i];
    const GgufTensorInfo& b = out->tensors()[i];
    require(a.name == b.name && a.shape == b.shape && a.type == b.type && a.n_bytes == b.n_bytes,
            "round trip changed tensor '" + a.name + "'");
    std::span<const std::byte> data = out->tensor_data(b);
    require(std::equal(data.begin(), data.end(), in.begin() + g.data_offset + a.offset),
            "round trip changed the data of tensor '" + a.name + "'");
  }
}

}  // namespace
}  // namespace optiq::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace optiq;
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  GgufContents g;
  try {
    g = parse_gguf(in, "fuzz-input.gguf");
  } catch (const InputError&) {
    return 0;  // the expected outcome for a malformed file
  }
  fuzz::check_contents(g, in);
  fuzz::round_trip(g, in);
  return 0;
}
