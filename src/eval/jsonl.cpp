#include "eval/jsonl.h"

#include <zlib.h>

#include <fstream>
#include <sstream>

#include "util/error.h"

namespace optiq::eval {

std::string read_maybe_gzip(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), std::nullopt, "cannot open the file");
  std::ostringstream s;
  s << in.rdbuf();
  std::string raw = s.str();
  if (raw.size() < 2 || static_cast<unsigned char>(raw[0]) != 0x1f || static_cast<unsigned char>(raw[1]) != 0x8b) return raw;
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) throw RuntimeError("zlib: inflateInit2 failed");
  z.next_in = reinterpret_cast<Bytef*>(raw.data());
  z.avail_in = static_cast<uInt>(raw.size());
  std::string out;
  char buf[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      const uint64_t at = z.total_in;
      inflateEnd(&z);
      throw InputError(path.string(), at, "corrupt gzip data");
    }
    out.append(buf, sizeof buf - z.avail_out);
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      throw InputError(path.string(), raw.size(), "the gzip stream is truncated");
    }
  }
  inflateEnd(&z);
  return out;
}

std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path) {
  const std::string text = read_maybe_gzip(path);
  std::vector<JsonlRecord> out;
  size_t start = 0;
  int line = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    ++line;
    const std::string_view row(text.data() + start, end - start);
    start = end + 1;
    if (row.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    nlohmann::ordered_json j = nlohmann::ordered_json::parse(row, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw InputError(path.string(), std::nullopt, "line " + std::to_string(line) + ": not a JSON object");
    out.push_back({std::move(j), line});
  }
  return out;
}

std::string string_field(const JsonlRecord& r, const std::string& file, const char* name) {
  if (!r.value.contains(name) || !r.value[name].is_string())
    throw InputError(file, std::nullopt, "line " + std::to_string(r.line) + ": field \"" + name + "\" is missing or not a string");
  return r.value[name].get<std::string>();
}

}  // namespace optiq::eval
