// libFuzzer target for the safetensors reader. A malformed file must end in InputError;
// anything else (another exception, e.g. one from the JSON library, a sanitizer report, an
// allocation over -rss_limit_mb) is a bug. A file that parses is held to what
// parse_safetensors promises: every tensor's bytes lie inside the file, match shape × dtype,
// and the tensors tile the data buffer exactly.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "fuzz_check.h"
#include "io/safetensors.h"
#include "util/error.h"

namespace optiq::fuzz {
namespace {

using u128 = unsigned __int128;

void check_contents(const SafetensorsContents& c, std::span<const std::byte> in) {
  uint64_t header_bytes;
  std::memcpy(&header_bytes, in.data(), 8);
  require(c.data_offset == u128(8) + header_bytes && c.data_offset <= in.size(),
          "data_offset is not 8 + the header length, inside the file");
  uint64_t expected_begin = 0;
  for (const auto& t : c.tensors) {
    const std::string name = "tensor '" + t.name + "': ";
    require(t.begin == expected_begin, name + "does not start where the previous one ended");
    require(t.begin <= t.end && t.end <= in.size() - c.data_offset, name + "range outside the buffer");
    u128 n = 1;
    for (uint64_t d : t.shape) n = std::min<u128>(n * d, u128(1) << 64);
    require(n == t.n_elements(), name + "n_elements() wraps around 2^64");
    require(n * safetensors_dtype_bytes(t.dtype) == t.end - t.begin,
            name + "byte range is not shape x dtype size");
    touch(in.subspan(c.data_offset + t.begin, t.end - t.begin));
    expected_begin = t.end;
  }
  require(expected_begin == in.size() - c.data_offset, "tensors do not cover the data buffer");
}

}  // namespace
}  // namespace optiq::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace optiq;
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data), size);
  SafetensorsContents c;
  try {
    c = parse_safetensors(in, "fuzz-input.safetensors");
  } catch (const InputError&) {
    return 0;  // the expected outcome for a malformed file
  }
  fuzz::check_contents(c, in);
  return 0;
}
