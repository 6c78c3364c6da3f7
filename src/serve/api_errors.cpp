#include "serve/api_errors.h"

#include <nlohmann/json.hpp>

namespace optiq::serve {
namespace {

// Anthropic's error types by status (docs.anthropic.com "Errors").
const char* anthropic_type(int status) {
  switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
  }
}

// OpenAI reports every client error as "invalid_request_error" (a bad key too, with code
// "invalid_api_key"); its SDK picks the exception class from the status alone.
const char* openai_type(int status) {
  if (status == 401) return "authentication_error";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

}  // namespace

ApiFlavor flavor_for_path(std::string_view path) {
  return path == "/v1/messages" || path.starts_with("/v1/messages/") ? ApiFlavor::Anthropic : ApiFlavor::OpenAI;
}

std::string error_body(ApiFlavor flavor, const ApiError& e) {
  nlohmann::ordered_json j;
  if (flavor == ApiFlavor::Anthropic) {
    j["type"] = "error";
    j["error"] = {{"type", anthropic_type(e.status())}, {"message", e.what()}};
  } else {
    nlohmann::ordered_json err;
    err["message"] = e.what();
    err["type"] = openai_type(e.status());
    err["param"] = e.param().empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.param());
    err["code"] = e.code().empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(e.code());
    j["error"] = std::move(err);
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace optiq::serve
