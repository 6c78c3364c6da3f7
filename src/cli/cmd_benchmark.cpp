#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/kv_cache_options.h"
#include "cli/lora_options.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "eval/perplexity.h"
#include "eval/speed.h"
#include "model/model_source.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace optiq::cli {
namespace {

struct BenchmarkArgs {
  std::string model, baseline, text_file;
  eval::SpeedOptions speed;
  int64_t ppl_ctx = 512;  // chunk length of the perplexity on -f
  int64_t ppl_chunks = -1;
  bool json = false;
  int threads = 0;
  KVCacheArgs kv;  // --cache-type-k/-v, --kv-config
  std::vector<std::string> lora;  // --lora PATH[:SCALE], for MODEL (not the baseline)
};

// Perplexity of the text as `optiq perplexity -f FILE -c CTX` computes it.
double text_perplexity(const std::string& path, const engine::Model& model, const BenchmarkArgs& args) {
  const std::string text = eval::read_perplexity_text(args.text_file);
  const Tokenizer tok = load_tokenizer(path);
  const std::vector<int32_t> tokens = tok.encode(text, /*add_special=*/true, /*parse_special=*/false);
  eval::ChunkSetup setup;
  setup.n_ctx = args.ppl_ctx;
  setup.bos = tok.add_bos ? tok.bos : -1;
  const int64_t max_chunks = static_cast<int64_t>(tokens.size()) / setup.n_ctx;
  if (max_chunks < 1)
    throw InputError(args.text_file, std::nullopt,
                     "tokenizes to " + std::to_string(tokens.size()) + " tokens, less than one chunk of " + std::to_string(setup.n_ctx));
  const int64_t n_chunk = args.ppl_chunks < 0 ? max_chunks : std::min(args.ppl_chunks, max_chunks);
  std::FILE* quiet = std::fopen("/dev/null", "w");
  const eval::PerplexityResult r = eval::compute_perplexity(model, tokens, n_chunk, setup, nullptr, quiet, quiet);
  std::fclose(quiet);
  return r.final.ppl;
}

// Every measurement of one model, in this process.
nlohmann::ordered_json measure(const std::string& path, const BenchmarkArgs& args, const std::vector<std::string>& lora_specs) {
  const ModelSource src = open_model_source(path);
  uint64_t bytes = 0, params = 0;
  for (const auto& t : src.tensors) bytes += t.data.size(), params += t.n_elements();
  const auto t0 = std::chrono::steady_clock::now();
  engine::Model model = engine::load_model(src);
  const LoadedAdapters adapters = load_adapters(model, lora_specs);
  model.deltas = adapters.deltas;
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  eval::SpeedOptions speed = args.speed;
  speed.kv = kv_cache_config(args.kv, model);
  const int64_t kv_positions = std::max<int64_t>({speed.n_prompt, speed.depth + speed.n_gen, 1}) + 1;
  std::string kv_summary;  // from a cache of the size measure_speed allocates, freed before it runs
  size_t kv_bytes = 0;
  {
    const engine::KVCache probe = engine::make_kv_cache(model, kv_positions, speed.kv);
    kv_summary = kv_cache_summary(probe);
    kv_bytes = probe.bytes();
  }
  const eval::SpeedResult r = eval::measure_speed(model, speed);
  nlohmann::ordered_json j;
  j["model"] = path;
  j["size_bytes"] = bytes;
  j["n_params"] = params;
  j["bits_per_weight"] = params ? 8.0 * static_cast<double>(bytes) / static_cast<double>(params) : 0.0;
  j["n_prompt"] = args.speed.n_prompt;
  j["n_gen"] = args.speed.n_gen;
  j["depth"] = args.speed.depth;
  j["kv_cache_bytes"] = kv_bytes;
  j["kv_cache_positions"] = kv_positions;
  j["kv_cache"] = kv_summary;
  j["threads"] = engine::num_threads();
  j["prefill_tps"] = r.prefill_tps;
  j["decode_tps"] = r.decode_tps;
  j["first_token_ms"] = r.first_token_ms;
  j["load_seconds"] = load_s;
  if (!args.text_file.empty()) j["ppl"] = text_perplexity(path, model, args);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  j["peak_rss_mib"] = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB
  return j;
}

// measure() in a child process, so that each model's peak RSS is its own. The child sends its
// JSON (or its error) through a pipe.
nlohmann::ordered_json measure_in_child(const std::string& path, const BenchmarkArgs& args,
                                        const std::vector<std::string>& lora_specs) {
  int fds[2];
  if (pipe(fds) != 0) throw RuntimeError("benchmark: pipe failed");
  std::fflush(stdout);
  const pid_t pid = fork();
  if (pid < 0) throw RuntimeError("benchmark: fork failed");
  if (pid == 0) {
    close(fds[0]);
    nlohmann::ordered_json out;
    try {
      out = measure(path, args, lora_specs);
    } catch (const InputError& e) {
      out = {{"error", e.what()}, {"input_error", true}};
    } catch (const std::exception& e) {
      out = {{"error", e.what()}, {"input_error", false}};
    }
    const std::string text = out.dump();
    size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = write(fds[1], text.data() + done, text.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    _exit(0);
  }
  close(fds[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(text, nullptr, false);
  if (j.is_discarded()) throw RuntimeError("benchmark: the measuring process of " + path + " died");
  if (j.contains("error")) {
    if (j["input_error"].get<bool>()) throw InputError(path, std::nullopt, j["error"].get<std::string>());
    throw RuntimeError(j["error"].get<std::string>());
  }
  return j;
}

double mean_of(const nlohmann::ordered_json& v) { return eval::SpeedResult::mean(v.get<std::vector<double>>()); }

void print_one(const nlohmann::ordered_json& j) {
  using S = eval::SpeedResult;
  std::printf("model:        %s\n", j["model"].get<std::string>().c_str());
  std::printf("size:         %.2f MiB, %.2fM parameters, %.2f bits per weight\n", j["size_bytes"].get<double>() / 1048576.0,
              j["n_params"].get<double>() / 1e6, j["bits_per_weight"].get<double>());
  std::printf("load:         %.2f s\n", j["load_seconds"].get<double>());
  const auto prefill = j["prefill_tps"].get<std::vector<double>>(), decode = j["decode_tps"].get<std::vector<double>>();
  if (!prefill.empty())
    std::printf("prefill %-5lld %10.2f ± %.2f tokens/s\n", j["n_prompt"].get<long long>(), S::mean(prefill), S::stddev(prefill));
  const long long depth = j["depth"].get<long long>();
  if (!decode.empty())
    std::printf("decode  %-5lld %10.2f ± %.2f tokens/s%s\n", j["n_gen"].get<long long>(), S::mean(decode), S::stddev(decode),
                depth ? (" after " + std::to_string(depth) + " tokens").c_str() : "");
  if (!prefill.empty()) std::printf("first token:  %.1f ms\n", j["first_token_ms"].get<double>());
  std::printf("%s\n", j["kv_cache"].get<std::string>().c_str());
  if (j.contains("ppl")) std::printf("perplexity:   %.4f\n", j["ppl"].get<double>());
  std::printf("peak RSS:     %.1f MiB\n", j["peak_rss_mib"].get<double>());
}

void print_comparison(const nlohmann::ordered_json& m, const nlohmann::ordered_json& b) {
  std::printf("model:    %s\nbaseline: %s\n\n| metric | model | baseline | Δ |\n|---|---:|---:|---:|\n",
              m["model"].get<std::string>().c_str(), b["model"].get<std::string>().c_str());
  auto row = [](const char* name, double x, double y) { std::printf("| %s | %.2f | %.2f | %+.2f |\n", name, x, y, x - y); };
  row("size MiB", m["size_bytes"].get<double>() / 1048576.0, b["size_bytes"].get<double>() / 1048576.0);
  row("bits per weight", m["bits_per_weight"].get<double>(), b["bits_per_weight"].get<double>());
  if (!m["prefill_tps"].empty()) row("prefill tokens/s", mean_of(m["prefill_tps"]), mean_of(b["prefill_tps"]));
  if (!m["decode_tps"].empty()) row("decode tokens/s", mean_of(m["decode_tps"]), mean_of(b["decode_tps"]));
  if (!m["prefill_tps"].empty()) row("first token ms", m["first_token_ms"].get<double>(), b["first_token_ms"].get<double>());
  if (m.contains("ppl")) row("perplexity", m["ppl"].get<double>(), b["ppl"].get<double>());
  row("KV cache MiB", m["kv_cache_bytes"].get<double>() / 1048576.0, b["kv_cache_bytes"].get<double>() / 1048576.0);
  row("peak RSS MiB", m["peak_rss_mib"].get<double>(), b["peak_rss_mib"].get<double>());
}

}  // namespace

Command register_benchmark(CLI::App& app) {
  auto args = std::make_shared<BenchmarkArgs>();
  CLI::App* sub = app.add_subcommand("benchmark", "Prefill and decode speed of optiq's engine on a model (like llama-bench)");
  sub->add_option("model", args->model, ".gguf file, Hugging Face folder, or hub id org/name[@revision]")->required();
  sub->add_option("-p,--n-prompt", args->speed.n_prompt, "tokens prefilled in one batch (default 512; 0 skips)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("-n,--n-gen", args->speed.n_gen, "tokens decoded one at a time (default 128; 0 skips)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("-d,--depth", args->speed.depth, "tokens prefilled before each decode run (default 0)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("-r,--repetitions", args->speed.repetitions, "runs of each test (default 3)")->check(CLI::PositiveNumber);
  sub->add_option("-t,--threads", args->threads, "matmul threads (default: the number of cores)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--baseline", args->baseline, "a second model measured the same way (each in its own process), shown side by side");
  sub->add_option("-f,--file", args->text_file, "also the perplexity of this text, as optiq perplexity computes it");
  sub->add_option("-c,--ctx-size", args->ppl_ctx, "with -f: tokens per perplexity chunk (default 512)")->check(CLI::PositiveNumber);
  sub->add_option("--chunks", args->ppl_chunks, "with -f: at most N chunks (default: all)")->check(CLI::PositiveNumber);
  sub->add_flag("--json", args->json, "print one JSON object instead of the table");
  add_kv_cache_options(sub, args->kv);
  add_lora_option(sub, args->lora);
  return {sub, [args] {
            engine::set_num_threads(args->threads);
            const std::string path = resolve_model_argument(args->model);
            if (args->baseline.empty()) {
              const nlohmann::ordered_json j = measure(path, *args, args->lora);
              if (args->json) std::printf("%s\n", j.dump().c_str());
              else print_one(j);
              return 0;
            }
            const std::string base_path = resolve_model_argument(args->baseline);
            const nlohmann::ordered_json m = measure_in_child(path, *args, args->lora);
            const nlohmann::ordered_json b = measure_in_child(base_path, *args, {});
            if (args->json) std::printf("%s\n", nlohmann::ordered_json{{"model", m}, {"baseline", b}}.dump().c_str());
            else print_comparison(m, b);
            return 0;
          }};
}

}  // namespace optiq::cli
