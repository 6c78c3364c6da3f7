// JSON input from users' files. Every failure (unreadable file, syntax error, a number too large
// for a double) becomes one InputError naming the file, and the byte offset for syntax errors.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

#include "util/error.h"

namespace optiq {

template <class Json = nlohmann::json>
Json parse_json(std::string_view text, const std::string& label) {
  try {
    return Json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw InputError(label, e.byte, std::string("invalid JSON: ") + e.what());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(label, std::nullopt, std::string("invalid JSON: ") + e.what());
  }
}

template <class Json = nlohmann::json>
Json read_json_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), std::nullopt, "cannot open the file");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_json<Json>(text.str(), path.string());
}

}  // namespace optiq
