#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>

#include "cli/commands.h"
#include "cli/runnable_model.h"
#include "cli/kv_cache_options.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "model/chat_prompt.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "lora/adapter.h"
#include "serve/adapter_registry.h"
#include "serve/api_errors.h"
#include "serve/generator.h"
#include "serve/http_server.h"
#include "util/error.h"

namespace optiq::cli {
namespace {

// SIGINT/SIGTERM reach the server through a pipe: the handler only writes the signal number
// (async-signal-safe), a watcher thread reads it and stops the server. (Blocking the signals and
// sigwait-ing would miss threads that libraries start before main, such as OpenBLAS's.)
int g_stop_pipe[2] = {-1, -1};

void on_stop_signal(int sig) {
  const unsigned char c = static_cast<unsigned char>(sig);
  [[maybe_unused]] const ssize_t n = write(g_stop_pipe[1], &c, 1);
}

}  // namespace

Command register_serve(CLI::App& app) {
  struct Args {
    std::string model, alias, chat_template_file;
    serve::ServerOptions server;
    int64_t n_ctx = 0;
    int parallel = 1, threads = 0, timeout_s = 600, max_queue = 256;
    bool no_prompt_cache = false;
    KVCacheArgs kv;
    std::vector<std::string> lora;  // NAME=PATH[:SCALE]
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("serve", "Serve a model over OpenAI- and Anthropic-compatible HTTP APIs");
  sub->add_option("model", args->model, ".gguf file, Hugging Face folder, or hub id org/name[@revision]")->required();
  sub->add_option("--host", args->server.host, "address to listen on (default 127.0.0.1: this machine only)");
  sub->add_option("--port", args->server.port, "port (default 8080; 0: any free port, printed)")->check(CLI::Range(0, 65535));
  sub->add_option("--api-key", args->server.api_key,
                  "require this key (Authorization: Bearer KEY or x-api-key: KEY) on every path but /health")
      ->envname("OPTIQ_API_KEY");
  sub->add_option("--alias", args->alias, "the model's name in the APIs (default: the model file's name)");
  sub->add_option("-c,--ctx-size", args->n_ctx, "context of each slot in tokens (default: the trained context, at most 4096)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--parallel", args->parallel, "slots: requests that hold a KV cache at once (default 1)")
      ->check(CLI::Range(1, 256));
  sub->add_option("--chat-template-file", args->chat_template_file, "a .jinja chat template to use instead of the model's");
  sub->add_option("-t,--threads", args->threads, "matmul threads (default: the number of cores)")->check(CLI::PositiveNumber);
  sub->add_option("--timeout", args->timeout_s,
                  "seconds a write to a client may block, and a request may wait for a free slot (default 600)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-queue", args->max_queue,
                  "requests that may wait for a slot at once; more get a 503 at once (default 256)")
      ->check(CLI::Range(0, 1 << 20));
  sub->add_flag("--no-prompt-cache", args->no_prompt_cache,
                "prefill every prompt whole instead of reusing the prefix its slot holds (exactly optiq generate's "
                "greedy tokens, at the cost of time to first token)");
  sub->add_flag("--python-tool", args->server.python_tool,
                "offer a built-in 'python' tool that the server runs itself in optiq eval's sandbox (no network, "
                "no kept files, 10 s), feeding the output back until the model answers");
  add_kv_cache_options(sub, args->kv);
  sub->add_option("--lora", args->lora,
                  "mount a LoRA adapter NAME=PATH[:SCALE] (PEFT folder or GGUF-LoRA file; NAME defaults to the file's "
                  "name); requests pick adapters with \"lora\": [{\"id\", \"scale\"}] or \"model\": \"BASE+NAME\"; repeatable")
      ->expected(1)
      ->take_all();
  return {sub, [args] {
            if (pipe2(g_stop_pipe, O_CLOEXEC) != 0) throw RuntimeError("optiq serve: pipe2 failed");
            struct sigaction stop_action {};
            stop_action.sa_handler = on_stop_signal;
            sigemptyset(&stop_action.sa_mask);
            sigaction(SIGINT, &stop_action, nullptr);
            sigaction(SIGTERM, &stop_action, nullptr);
            std::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not a crash

            engine::set_num_threads(args->threads);
            const RunnableModel runnable = load_runnable_model(args->model);
            const std::string& path = runnable.path;
            const engine::Model& model = runnable.model;
            const Tokenizer& tok = runnable.tok;
            std::optional<ChatTemplate> tmpl;
            if (!args->chat_template_file.empty()) {
              tmpl = load_chat_template(path, args->chat_template_file, tok);
            } else {
              try {
                tmpl = load_chat_template(path);
              } catch (const InputError& e) {
                std::fprintf(stderr, "optiq serve: %s; chat requests will get a 400 (see --chat-template-file)\n", e.what());
              }
            }

            serve::Generator::Options gen_options;
            gen_options.n_ctx = args->n_ctx > 0 ? args->n_ctx : std::min<int64_t>(model.hp.n_ctx_train, 4096);
            gen_options.n_slots = args->parallel;
            gen_options.kv = kv_cache_config(args->kv, model);
            gen_options.slot_wait = std::chrono::seconds(args->timeout_s);
            gen_options.max_waiting = args->max_queue;
            gen_options.prompt_cache = !args->no_prompt_cache;
            serve::Generator generator(model, tok, std::move(tmpl), gen_options);

            serve::AdapterRegistry adapters(model);
            for (const std::string& spec : args->lora) {
              const size_t eq = spec.find('=');
              const lora::AdapterSpec s = lora::parse_adapter_spec(eq == std::string::npos ? spec : spec.substr(eq + 1));
              const std::string name = eq == std::string::npos ? std::filesystem::path(s.path).stem().string() : spec.substr(0, eq);
              try {
                const auto a = adapters.load(name, s.path, s.scale);
                std::fprintf(stderr, "optiq serve: LoRA adapter %s (id %d): %s, %zu matrices, scale %g\n", a->name.c_str(), a->id,
                             a->path.c_str(), a->adapter.matrices.size(), static_cast<double>(a->scale));
              } catch (const serve::ApiError& e) {
                throw InputError("--lora " + spec, std::nullopt, e.what());
              }
            }

            serve::ServedModel served;
            served.path = args->model;
            served.file_name = std::filesystem::path(path).filename().string();
            served.alias = args->alias.empty() ? served.file_name : args->alias;
            served.n_ctx = gen_options.n_ctx;
            served.n_slots = args->parallel;
            served.kv_type_k = args->kv.config_file.empty() ? args->kv.type_k : "per layer (" + args->kv.config_file + ")";
            served.kv_type_v = args->kv.config_file.empty() ? args->kv.type_v : "per layer (" + args->kv.config_file + ")";
            served.created = static_cast<int64_t>(std::time(nullptr));

            args->server.write_timeout = std::chrono::seconds(args->timeout_s);
            serve::HttpServer server(generator, adapters, served, args->server);
            server.bind();
            std::fprintf(stderr, "optiq serve: %s, %d slot(s) of %lld tokens; %s\n", served.alias.c_str(), args->parallel,
                         static_cast<long long>(gen_options.n_ctx), kv_cache_summary(generator.cache(0)).c_str());
            if (args->server.python_tool)
              std::fprintf(stderr, "optiq serve: the python tool is on (calls run in the sandbox, for at most %d replies a request)\n",
                           serve::kMaxPythonRounds);
            std::fprintf(stderr, "optiq serve: listening on http://%s:%d\n", args->server.host.c_str(), server.port());

            std::atomic<bool> done{false};
            std::thread watcher([&] {
              pollfd pfd{g_stop_pipe[0], POLLIN, 0};
              bool requested = false;  // a signal came, maybe before run() had started listening
              while (!done) {
                if (poll(&pfd, 1, 200) > 0) {
                  unsigned char sig = 0;
                  if (read(g_stop_pipe[0], &sig, 1) == 1 && !requested) {
                    std::fprintf(stderr, "optiq serve: %s: no new connections; finishing the requests in flight\n",
                                 sig == SIGINT ? "SIGINT" : "SIGTERM");
                    requested = true;
                  }
                }
                if (requested && server.is_running()) {
                  server.stop();
                  break;
                }
              }
            });
            server.run();
            done = true;
            watcher.join();
            std::fprintf(stderr, "optiq serve: stopped\n");
            return 0;
          }};
}

}  // namespace optiq::cli
