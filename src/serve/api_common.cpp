#include "serve/api_common.h"

#include <algorithm>
#include <random>

#include "serve/api_errors.h"
#include "util/error.h"

namespace optiq::serve {

void check_model_name(const Json& body, const ServedModel& model, bool required) {
  const std::optional<std::string> name = string_field(body, "model");
  if (required && !name) throw ApiError(400, "'model' is required", "model");
  if (!name || name->empty()) return;
  const std::string base = name->substr(0, name->find('+'));
  if (base == model.alias || base == model.file_name || base == model.path) return;
  throw ApiError(404, "The model '" + *name + "' does not exist: this server runs '" + model.alias + "'", "model",
                 "model_not_found");
}

std::string random_id(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char* kHex = "0123456789abcdef";
  std::string id = prefix;
  for (int i = 0; i < 24; ++i) id += kHex[rng() & 15];
  return id;
}

void force_tool_call(GenerationRequest& req, const std::string& only, const char* param, const char* name_param) {
  const auto& names = req.output_format.tool_names;
  if (names.empty()) throw ApiError(400, std::string(param) + " forces a tool call, but the request has no tools", param);
  if (!only.empty() && std::find(names.begin(), names.end(), only) == names.end())
    throw ApiError(400, std::string(param) + " names '" + only + "', which is not among the request's tools", name_param);
  try {
    req.constraint = forced_tool_call(req.tools, only);
  } catch (const InputError& e) {
    throw ApiError(400, std::string("tools: ") + e.what(), "tools");
  }
}

}  // namespace optiq::serve
