#include "serve/request_fields.h"

#include <cmath>

#include "serve/api_errors.h"

namespace optiq::serve {
namespace {

[[noreturn]] void bad(const char* name, const std::string& what) {
  throw ApiError(400, std::string("'") + name + "' " + what, name);
}

}  // namespace

Json parse_body(const std::string& body) {
  Json j;
  try {
    j = Json::parse(body);
  } catch (const nlohmann::json::exception& e) {
    // parse_error for bad syntax, out_of_range for a number no double holds (1e400).
    throw ApiError(400, std::string("the body is not valid JSON: ") + e.what());
  }
  if (!j.is_object()) throw ApiError(400, "the body must be a JSON object");
  return j;
}

const Json* find_field(const Json& obj, const char* name) {
  const auto it = obj.find(name);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

const Json& required_field(const Json& obj, const char* name) {
  const Json* v = find_field(obj, name);
  if (!v) bad(name, "is required");
  return *v;
}

std::optional<std::string> string_field(const Json& obj, const char* name) {
  const Json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) bad(name, "must be a string");
  return v->get<std::string>();
}

std::optional<bool> bool_field(const Json& obj, const char* name) {
  const Json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) bad(name, "must be a boolean");
  return v->get<bool>();
}

std::optional<double> number_field(const Json& obj, const char* name, double lo, double hi) {
  const Json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  if (!v->is_number()) bad(name, "must be a number");
  const double x = v->get<double>();
  if (!(x >= lo && x <= hi))
    bad(name, "must be between " + Json(lo).dump() + " and " + Json(hi).dump() + ", got " + v->dump());
  return x;
}

std::optional<int64_t> integer_field(const Json& obj, const char* name, int64_t lo, int64_t hi) {
  const Json* v = find_field(obj, name);
  if (!v) return std::nullopt;
  const auto out_of_range = [&] {
    bad(name, "must be between " + std::to_string(lo) + " and " + std::to_string(hi) + ", got " + v->dump());
  };
  int64_t x = 0;
  if (v->is_number_unsigned()) {
    // nlohmann keeps non-negative integers as uint64_t, exactly: compared as such, not through
    // a double that rounds 2^63 - 1 up to 2^63.
    const uint64_t u = v->get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) out_of_range();
    x = static_cast<int64_t>(u);
  } else if (v->is_number_integer()) {
    x = v->get<int64_t>();
  } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>()) {
    // A float with no fraction (8.0) counts as its integer; outside [-2^63, 2^63) it has no
    // int64_t, and converting it would be undefined behaviour.
    const double d = v->get<double>();
    if (!(d >= -0x1p63 && d < 0x1p63)) out_of_range();
    x = static_cast<int64_t>(d);
  } else {
    bad(name, "must be an integer");
  }
  if (x < lo || x > hi) out_of_range();
  return x;
}

std::vector<std::string> string_or_list_field(const Json& obj, const char* name, size_t max_items) {
  const Json* v = find_field(obj, name);
  if (!v) return {};
  std::vector<std::string> out;
  if (v->is_string()) {
    out.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const Json& s : *v) {
      if (!s.is_string()) bad(name, "must be a string or a list of strings");
      out.push_back(s.get<std::string>());
    }
  } else {
    bad(name, "must be a string or a list of strings");
  }
  if (out.size() > max_items) bad(name, "has more than " + std::to_string(max_items) + " entries");
  for (const std::string& s : out)
    if (s.empty()) bad(name, "must not contain an empty string");
  return out;
}

}  // namespace optiq::serve
