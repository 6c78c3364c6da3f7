#include "io/http.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <exception>
#include <mutex>

#include "util/trim.h"

namespace optiq::http {
namespace {

// Error pages are only quoted in messages; a server must not make us hold megabytes of them.
constexpr size_t kMaxErrorBodyBytes = 64 * 1024;
constexpr long kConnectTimeoutSeconds = 15;
// A transfer slower than 1 byte/s for this long is a dead connection, not a slow one.
constexpr long kStallSeconds = 30;

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

struct Transfer {
  CURL* curl;
  const Request* request;
  Response response;
  std::exception_ptr sink_error;
};

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view line(data, size * count);
  // A status line starts a new response (e.g. after "100 Continue"); only the last one counts.
  if (line.starts_with("HTTP/")) {
    t->response.headers.clear();
  } else if (const size_t colon = line.find(':'); colon != std::string_view::npos) {
    t->response.headers[lower(std::string(trim(line.substr(0, colon))))] = std::string(trim(line.substr(colon + 1)));
  }
  return size * count;
}

size_t on_data(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (t->request->on_body && status >= 200 && status < 300) {
    try {
      t->request->on_body(status, std::string_view(data, n));
    } catch (...) {
      t->sink_error = std::current_exception();
      return 0;  // any count but n makes libcurl abort with CURLE_WRITE_ERROR
    }
    return n;
  }
  std::string& body = t->response.body;
  if (status >= 200 && status < 300) {
    body.append(data, n);
  } else if (body.size() < kMaxErrorBodyBytes) {
    body.append(data, std::min(n, kMaxErrorBodyBytes - body.size()));
  }
  return n;
}

}  // namespace

struct Client::Handle {
  CURL* curl = nullptr;
  char error[CURL_ERROR_SIZE] = {};  // libcurl keeps this pointer as long as the handle lives
};

std::string Response::header(const std::string& lower_name) const {
  const auto it = headers.find(lower_name);
  return it == headers.end() ? std::string() : it->second;
}

std::string origin(const std::string& url) {
  CURLU* u = curl_url();
  std::string result;
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* scheme = nullptr;
    char* host = nullptr;
    char* port = nullptr;
    if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK) {
      result = lower(scheme) + "://" + lower(host) + ":" + port;
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
  }
  curl_url_cleanup(u);
  return result;
}

std::string url_encode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const unsigned char c : s) {
    const bool unreserved = std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Client::Client() : handle_(std::make_unique<Handle>()) {
  static std::once_flag global_init;
  std::call_once(global_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  handle_->curl = curl_easy_init();
  if (!handle_->curl) throw RuntimeError("libcurl: cannot create a transfer handle");
}

Client::~Client() { curl_easy_cleanup(handle_->curl); }

Response Client::perform(const Request& request) {
  // Redirect targets come from servers; only the web, never file:// or other schemes libcurl
  // knows, may be fetched.
  const std::string target = origin(request.url);
  if (!target.starts_with("http://") && !target.starts_with("https://"))
    throw RuntimeError("refusing to fetch " + request.url + ": only http and https URLs are used");
  CURL* curl = handle_->curl;
  // Reset drops the previous request's options but keeps open connections for reuse.
  curl_easy_reset(curl);
  Transfer t{curl, &request, {}, nullptr};
  char* error = handle_->error;
  error[0] = '\0';

  curl_slist* headers = nullptr;
  for (const std::string& h : request.headers) headers = curl_slist_append(headers, h.c_str());

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOBODY, request.head ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "optiq/" OPTIQ_VERSION);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutSeconds);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, kStallSeconds);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);

  const CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (t.sink_error) std::rethrow_exception(t.sink_error);
  if (rc != CURLE_OK) {
    throw TransportError((request.head ? "HEAD " : "GET ") + request.url + ": " +
                         (error[0] ? error : curl_easy_strerror(rc)));
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.response.status);
  t.response.url = request.url;
  char* redirect = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_REDIRECT_URL, &redirect) == CURLE_OK && redirect) {
    t.response.redirect_url = redirect;
  }
  return std::move(t.response);
}

}  // namespace optiq::http
