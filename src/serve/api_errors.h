// The errors the server answers with, in each API's own shape:
//   OpenAI     {"error": {"message": ..., "type": ..., "param": ... | null, "code": ... | null}}
//   Anthropic  {"type": "error", "error": {"type": ..., "message": ...}}
// Handlers throw ApiError; the HTTP layer picks the shape from the request's path, so the
// official SDKs raise their typed exceptions (BadRequestError, AuthenticationError, ...).
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace optiq::serve {

enum class ApiFlavor { OpenAI, Anthropic };

// /v1/messages and everything under it speak Anthropic; every other path OpenAI.
ApiFlavor flavor_for_path(std::string_view path);

class ApiError : public std::runtime_error {
 public:
  // status: the HTTP status (400, 401, 404, 413, 500, 503). param: the request field at fault
  // (OpenAI's "param"), or empty. code: OpenAI's machine-readable "code", or empty.
  ApiError(int status, const std::string& message, std::string param = {}, std::string code = {})
      : std::runtime_error(message), status_(status), param_(std::move(param)), code_(std::move(code)) {}

  int status() const { return status_; }
  const std::string& param() const { return param_; }
  const std::string& code() const { return code_; }

 private:
  int status_;
  std::string param_, code_;
};

// The JSON body for `e` in the flavor's shape (one line, no trailing newline).
std::string error_body(ApiFlavor flavor, const ApiError& e);

}  // namespace optiq::serve
