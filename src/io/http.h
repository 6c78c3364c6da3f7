// A small libcurl wrapper: one request per call and no redirect following, so the caller decides
// per hop which headers (Authorization above all) a redirect target may see.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "util/error.h"

namespace optiq::http {

// The server could not be reached or the transfer broke off (DNS, refused connection, TLS,
// timeout, truncated body), as opposed to an HTTP error status, which is a normal Response.
class TransportError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
};

struct Request {
  std::string url;
  bool head = false;
  std::vector<std::string> headers;  // "Name: value"
  // Receives the body of a 2xx response chunk by chunk, with its status (200 or 206 tells the
  // caller whether a Range was honoured). An exception it throws aborts the transfer and
  // propagates out of perform(). Bodies of other statuses, and all bodies without a sink, go to
  // Response::body.
  std::function<void(long status, std::string_view chunk)> on_body;
};

struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased; the last value wins
  std::string body;
  std::string url;           // the URL that gave this response
  std::string redirect_url;  // absolute target of a 3xx, relative Locations resolved

  std::string header(const std::string& lower_name) const;  // "" when absent
};

// Scheme, host and port of an absolute URL ("" if it does not parse): two URLs with the same
// origin may share credentials.
std::string origin(const std::string& url);

// Percent-encodes everything except unreserved characters and, when keep_slash, '/'.
std::string url_encode(std::string_view s, bool keep_slash);

// One libcurl handle, reused across requests so consecutive requests to the same host share a
// connection (and a TLS handshake).
class Client {
 public:
  Client();
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Throws TransportError when no complete HTTP response arrives.
  Response perform(const Request& request);

 private:
  struct Handle;
  std::unique_ptr<Handle> handle_;
};

}  // namespace optiq::http
