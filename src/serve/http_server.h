// The HTTP side of optiq serve (cpp-httplib): routes, API keys, body limits, per-request logs
// and metrics, error bodies in each API's shape, and server-sent event streams.
//
//   POST /v1/chat/completions      OpenAI chat (stream or not)
//   POST /v1/completions           OpenAI text completion (stream or not)
//   GET  /v1/models                the served model
//   POST /v1/messages              Anthropic Messages (stream or not)
//   POST /v1/messages/count_tokens Anthropic token count
//   GET  /lora-adapters            the mounted LoRA adapters
//   POST /lora-adapters            mount one: {"name", "path", "scale"?}
//   DELETE /lora-adapters/NAME     unmount one (requests using it finish with it)
//   GET  /health                   {"status": "ok"} (no API key needed)
//   GET  /metrics                  Prometheus text
//
// Every handler catches everything: a bad request is a 4xx in its API's shape, anything else a
// 500; the server keeps running. stop() (from a signal) stops accepting connections and returns
// from run() once the requests in flight have been answered.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <httplib.h>

#include "serve/adapter_registry.h"
#include "serve/api_common.h"
#include "serve/generator.h"
#include "serve/metrics.h"
#include "serve/python_tool.h"

namespace optiq::serve {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                         // 0: any free port (see HttpServer::port)
  std::string api_key;                     // empty: no key needed
  size_t max_body_bytes = 8 << 20;         // larger bodies get a 413
  std::chrono::seconds write_timeout{600};  // a blocked write to a client gives up after this
  // Silence while reading a request (its line, headers or body) ends the connection. Short, so
  // that a client holding an idle connection open cannot delay a shutdown for long.
  std::chrono::seconds read_timeout{10};
  bool python_tool = false;            // --python-tool (python_tool.h)
  eval::SandboxLimits python_limits;   // what each of its runs may use
};

// True when `given` equals `expected`, in time that depends on neither (both are hashed first,
// so not even the length leaks).
bool api_key_matches(const std::string& given, const std::string& expected);
// The key a request carries: "Authorization: Bearer KEY" (OpenAI) or "x-api-key: KEY"
// (Anthropic); empty when neither.
std::string request_api_key(const httplib::Request& req);

class HttpServer {
 public:
  HttpServer(Generator& generator, AdapterRegistry& adapters, ServedModel model, ServerOptions options);
  ~HttpServer();

  // Binds host:port; throws RuntimeError when it cannot.
  void bind();
  int port() const { return bound_port_; }
  // Serves until stop(), then waits for the requests in flight.
  void run();
  bool is_running() const;
  void stop();

 private:
  enum class Endpoint { ChatCompletions, Completions, Messages };
  void install_routes();
  void handle_generation(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
  void handle_count_tokens(const httplib::Request& req, httplib::Response& res);
  void install_adapter_routes();
  // Streams a started generation as server-sent events; false when the client went away.
  bool stream_generation(httplib::DataSink& sink, SlotLease& slot, const GenerationRequest& request,
                         const std::vector<int32_t>& prompt, Endpoint endpoint);
  // Called after each round of run_rounds with that round's result (a stream flushes it there).
  using RoundEnd = std::function<bool(const GenerationResult& round)>;
  // The request's generation in its slot; with the server's python tool, repeated while the
  // model calls it (python_tool.h): each call runs in the sandbox and goes back as a tool
  // result. The result adds up the rounds (tokens; reasoning and text joined by blank lines;
  // the last round's calls and finish); `runs` receives the python runs. A round that no longer
  // fits in the context ends it (finish Length).
  GenerationResult run_rounds(SlotLease& slot, GenerationRequest request, std::vector<int32_t> prompt,
                              const Generator::TextSink& on_text, const RoundEnd& on_round_end, std::vector<PythonRun>& runs);
  // Records a request's token counts and latencies for its log line and the metrics.
  static void note_result(const GenerationResult& result);

  Generator& generator_;
  AdapterRegistry& adapters_;
  ServedModel model_;
  ServerOptions options_;
  Metrics metrics_;
  std::unique_ptr<httplib::Server> server_;
  int bound_port_ = 0;
  std::atomic<bool> stopping_{false};  // stop() was called
};

}  // namespace optiq::serve
