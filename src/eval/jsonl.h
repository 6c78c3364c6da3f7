// Line-delimited JSON datasets (.jsonl, or gzip-compressed .jsonl.gz): one object per non-blank
// line. A line that is not a JSON object is an InputError naming the file and the line number.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace optiq::eval {

struct JsonlRecord {
  nlohmann::ordered_json value;  // the parsed object
  int line = 0;                  // 1-based line number in the (decompressed) file
};

// The whole file as text, gunzipped when it starts with the gzip magic bytes.
std::string read_maybe_gzip(const std::filesystem::path& path);

std::vector<JsonlRecord> read_jsonl(const std::filesystem::path& path);

// A string field of a record, or an InputError "line N: field \"name\" ..." when missing.
std::string string_field(const JsonlRecord& r, const std::string& file, const char* name);

}  // namespace optiq::eval
