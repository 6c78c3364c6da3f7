// Reading typed fields of a JSON request body. Every mismatch is an ApiError 400 that names
// the field ("'temperature' must be a number"), so clients see what to fix. An absent field and
// an explicit null are both "not given", as the OpenAI and Anthropic APIs treat them.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace optiq::serve {

using Json = nlohmann::ordered_json;

// The body parsed as a JSON object; malformed JSON or another type is an ApiError 400.
Json parse_body(const std::string& body);

// The field, or nullptr when absent or null.
const Json* find_field(const Json& obj, const char* name);

std::optional<std::string> string_field(const Json& obj, const char* name);
std::optional<bool> bool_field(const Json& obj, const char* name);
// A number within [lo, hi] (inclusive).
std::optional<double> number_field(const Json& obj, const char* name, double lo, double hi);
// An integer (a JSON number with no fraction) within [lo, hi].
std::optional<int64_t> integer_field(const Json& obj, const char* name, int64_t lo, int64_t hi);
// A string or an array of strings (OpenAI's "stop"); at most `max_items`, none empty.
std::vector<std::string> string_or_list_field(const Json& obj, const char* name, size_t max_items);

// Throws ApiError 400 naming `name` when the field is missing or null.
const Json& required_field(const Json& obj, const char* name);

}  // namespace optiq::serve
