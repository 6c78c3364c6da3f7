#include "serve/http_server.h"

#include <cstdio>
#include <optional>

#include "serve/anthropic_api.h"
#include "serve/api_errors.h"
#include "serve/openai_api.h"
#include "util/error.h"
#include "util/sha256.h"

namespace optiq::serve {
namespace {

using Clock = std::chrono::steady_clock;

// What the per-request log line and the metrics need beyond httplib's Request/Response. Set on
// the connection's worker thread by the pre-routing handler, filled in by the handlers (for a
// stream, by its content provider), read by the logger, which httplib calls on the same thread
// after the response (a streamed body included) is written.
struct RequestTrace {
  Clock::time_point start = Clock::now();
  int64_t prompt_tokens = 0, generated_tokens = 0, cached_tokens = 0;
  std::optional<double> time_to_first_token, time_per_token;  // seconds (RequestSample)
};
thread_local RequestTrace t_trace;

const char* const kRoutes[] = {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/messages",
                               "/v1/messages/count_tokens", "/health", "/metrics", "/apply-template", "/tokenize",
                               "/detokenize"};

std::string route_label(const std::string& path) {
  for (const char* r : kRoutes)
    if (path == r) return r;
  return "other";
}

void send_error(const httplib::Request& req, httplib::Response& res, const ApiError& e) {
  res.status = e.status();
  res.set_content(error_body(flavor_for_path(req.path), e), "application/json");
}

// Runs a handler, turning whatever it throws into an error response of the path's API.
template <class Fn>
void guarded(const httplib::Request& req, httplib::Response& res, Fn&& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    send_error(req, res, e);
  } catch (const InputError& e) {
    send_error(req, res, ApiError(400, e.what()));
  } catch (const std::exception& e) {
    send_error(req, res, ApiError(500, std::string("internal error: ") + e.what()));
  } catch (...) {
    send_error(req, res, ApiError(500, "internal error"));
  }
}

// The message of an error httplib answers by itself (no route, body too large, bad request).
std::string status_message(const httplib::Request& req, int status, size_t max_body) {
  switch (status) {
    case 404: return "unknown path: " + req.method + " " + req.path;
    case 413: return "the request body is over the limit of " + std::to_string(max_body) + " bytes";
    case 400: return "malformed HTTP request";
    default: return "HTTP status " + std::to_string(status);
  }
}

}  // namespace

bool api_key_matches(const std::string& given, const std::string& expected) {
  Sha256 a, b;
  a.update(given);
  b.update(expected);
  const std::string ha = a.hex(), hb = b.hex();
  unsigned char diff = 0;
  for (size_t i = 0; i < ha.size(); ++i) diff |= static_cast<unsigned char>(ha[i] ^ hb[i]);
  return diff == 0;
}

std::string request_api_key(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  static const std::string kBearer = "Bearer ";
  if (auth.size() > kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0) return auth.substr(kBearer.size());
  return req.get_header_value("x-api-key");
}

HttpServer::HttpServer(Generator& generator, AdapterRegistry& adapters, ServedModel model, ServerOptions options)
    : generator_(generator), adapters_(adapters), model_(std::move(model)), options_(std::move(options)),
      server_(std::make_unique<httplib::Server>()) {
  // A request holds its worker thread from its first byte to its last, waiting for a slot and
  // streaming included. httplib's default pool (max(8, cores - 1) threads) would let no more
  // than 8 requests reach the slots, however many there are; each slot gets a thread, and 8
  // more take requests that wait for one, answer /health, /metrics and bad requests meanwhile.
  const size_t workers = static_cast<size_t>(generator_.n_slots()) + 8;
  server_->new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  install_routes();
}

HttpServer::~HttpServer() = default;

void HttpServer::bind() {
  if (options_.port == 0) {
    bound_port_ = server_->bind_to_any_port(options_.host);
    if (bound_port_ <= 0) throw RuntimeError("optiq serve: cannot bind " + options_.host);
  } else {
    if (!server_->bind_to_port(options_.host, options_.port))
      throw RuntimeError("optiq serve: cannot bind " + options_.host + ":" + std::to_string(options_.port) +
                         " (in use, or not an address of this machine)");
    bound_port_ = options_.port;
  }
}

void HttpServer::run() { server_->listen_after_bind(); }

bool HttpServer::is_running() const { return server_->is_running(); }

void HttpServer::stop() {
  stopping_ = true;
  server_->stop();
}

void HttpServer::install_routes() {
  httplib::Server& s = *server_;
  s.set_payload_max_length(options_.max_body_bytes);
  s.set_read_timeout(options_.read_timeout.count());
  s.set_write_timeout(options_.write_timeout.count());

  s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    t_trace = RequestTrace{};
    if (options_.api_key.empty() || req.path == "/health") return httplib::Server::HandlerResponse::Unhandled;
    const std::string key = request_api_key(req);
    if (api_key_matches(key, options_.api_key)) return httplib::Server::HandlerResponse::Unhandled;
    send_error(req, res,
               ApiError(401, key.empty() ? "no API key: send 'Authorization: Bearer KEY' or 'x-api-key: KEY'"
                                         : "incorrect API key",
                        "", "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  // httplib's own errors (no route, body too large, malformed request) get a body in the API's
  // shape; responses that already have one are left alone.
  s.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    send_error(req, res, ApiError(res.status, status_message(req, res.status, options_.max_body_bytes)));
    return httplib::Server::HandlerResponse::Handled;
  }));
  s.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
    send_error(req, res, ApiError(500, "internal error"));
  });
  s.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const RequestTrace& t = t_trace;
    const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t.start).count();
    std::fprintf(stderr, "optiq serve: %s %s %d prompt=%lld generated=%lld %.0f ms\n", req.method.c_str(), req.path.c_str(),
                 res.status, static_cast<long long>(t.prompt_tokens), static_cast<long long>(t.generated_tokens), ms);
    metrics_.record({route_label(req.path), res.status, t.prompt_tokens, t.generated_tokens, t.cached_tokens,
                     t.time_to_first_token, t.time_per_token});
    t_trace = RequestTrace{};  // a request that never reaches pre-routing (malformed) starts clean
  });

  s.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.prometheus_text(generator_.slot_gauges()), "text/plain; version=0.0.4");
  });
  s.Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] { res.set_content(models_list(model_, adapters_.list()).dump(), "application/json"); });
  });
  s.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generation(req, res, Endpoint::ChatCompletions);
  });
  s.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generation(req, res, Endpoint::Completions);
  });
  s.Post("/v1/messages", [this](const httplib::Request& req, httplib::Response& res) {
    handle_generation(req, res, Endpoint::Messages);
  });
  s.Post("/v1/messages/count_tokens", [this](const httplib::Request& req, httplib::Response& res) {
    handle_count_tokens(req, res);
  });
  install_adapter_routes();
  // llama-server's utility endpoints, with its request and response shapes.
  s.Post("/apply-template", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
      GenerationRequest request = parse_chat_completion(parse_body(req.body), model_);
      res.set_content(Json{{"prompt", generator_.render_prompt(request)}}.dump(-1, ' ', false, Json::error_handler_t::replace),
                      "application/json");
    });
  });
  s.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
      const Json body = parse_body(req.body);
      const Json& content = required_field(body, "content");
      if (!content.is_string()) throw ApiError(400, "'content' must be a string", "content");
      const std::vector<int32_t> ids = generator_.tokenize(content.get<std::string>(), bool_field(body, "add_special").value_or(false),
                                                           bool_field(body, "parse_special").value_or(true));
      Json tokens = Json::array();
      if (bool_field(body, "with_pieces").value_or(false)) {
        for (const int32_t id : ids) tokens.push_back({{"id", id}, {"piece", generator_.detokenize({id})}});
      } else {
        tokens = ids;
      }
      res.set_content(Json{{"tokens", tokens}}.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
    });
  });
  s.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
      const Json body = parse_body(req.body);
      const Json& tokens = required_field(body, "tokens");
      std::vector<int32_t> ids;
      if (tokens.is_array())
        for (const Json& t : tokens)
          if (t.is_number_integer() && t.get<int64_t>() >= INT32_MIN && t.get<int64_t>() <= INT32_MAX) ids.push_back(t.get<int32_t>());
      if (!tokens.is_array() || ids.size() != tokens.size())
        throw ApiError(400, "'tokens' must be a list of token ids", "tokens");
      res.set_content(Json{{"content", generator_.detokenize(ids)}}.dump(-1, ' ', false, Json::error_handler_t::replace),
                      "application/json");
    });
  });
}

void HttpServer::install_adapter_routes() {
  httplib::Server& s = *server_;
  const auto entry = [](const MountedAdapter& a) {
    return Json{{"id", a.id}, {"name", a.name}, {"path", a.path}, {"scale", a.scale},
                {"matrices", a.adapter.matrices.size()}, {"bytes", a.adapter.bytes()}};
  };
  s.Get("/lora-adapters", [this, entry](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
      Json list = Json::array();
      for (const auto& a : adapters_.list()) list.push_back(entry(*a));
      res.set_content(list.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
    });
  });
  s.Post("/lora-adapters", [this, entry](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
      const Json body = parse_body(req.body);
      if (!body.is_object())
        throw ApiError(400, "send {\"name\", \"path\", \"scale\"} to load an adapter (optiq applies adapters per request, "
                            "through \"lora\" or \"model\": \"BASE+NAME\")");
      const Json& name = required_field(body, "name");
      const Json& path = required_field(body, "path");
      if (!name.is_string()) throw ApiError(400, "'name' must be a string", "name");
      if (!path.is_string()) throw ApiError(400, "'path' must be a string", "path");
      const double scale = number_field(body, "scale", -1e6, 1e6).value_or(1.0);
      const auto a = adapters_.load(name.get<std::string>(), path.get<std::string>(), static_cast<float>(scale));
      std::fprintf(stderr, "optiq serve: loaded LoRA adapter %s (id %d) from %s\n", a->name.c_str(), a->id, a->path.c_str());
      res.set_content(entry(*a).dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
    });
  });
  s.Delete(R"(/lora-adapters/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(req, res, [&] {
      const std::string name = req.matches[1];
      if (!adapters_.unload(name)) throw ApiError(404, "no LoRA adapter is named '" + name + "'", "name");
      std::fprintf(stderr, "optiq serve: unloaded LoRA adapter %s\n", name.c_str());
      res.set_content(Json{{"deleted", name}}.dump(-1, ' ', false, Json::error_handler_t::replace), "application/json");
    });
  });
}

void HttpServer::handle_count_tokens(const httplib::Request& req, httplib::Response& res) {
  guarded(req, res, [&] {
    GenerationRequest request = parse_count_tokens(parse_body(req.body), model_);
    const int64_t n = static_cast<int64_t>(generator_.tokenize_prompt(request).size());
    res.set_content(Json{{"input_tokens", n}}.dump(), "application/json");
  });
}

void HttpServer::note_result(const GenerationResult& r) {
  t_trace.prompt_tokens = r.prompt_tokens;
  t_trace.generated_tokens = r.completion_tokens;
  t_trace.cached_tokens = r.cached_tokens;
  if (!r.first_token_at) return;
  t_trace.time_to_first_token = std::chrono::duration<double>(*r.first_token_at - t_trace.start).count();
  if (r.completion_tokens > 1)
    t_trace.time_per_token =
        std::chrono::duration<double>(r.last_token_at - *r.first_token_at).count() / static_cast<double>(r.completion_tokens - 1);
}

}  // namespace optiq::serve
