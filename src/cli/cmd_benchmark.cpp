#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli/commands.h"
#include "cli/kv_cache_options.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "eval/speed.h"
#include "model/model_source.h"

namespace optiq::cli {

Command register_benchmark(CLI::App& app) {
  struct Args {
    std::string model;
    eval::SpeedOptions speed;
    bool json = false;
    int threads = 0;
    KVCacheArgs kv;
  };
  auto args = std::make_shared<Args>();
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
  sub->add_flag("--json", args->json, "print one JSON object instead of the table");
  add_kv_cache_options(sub, args->kv);
  return {sub, [args] {
            engine::set_num_threads(args->threads);
            const std::string path = resolve_model_argument(args->model);
            const ModelSource src = open_model_source(path);
            uint64_t bytes = 0, params = 0;
            for (const auto& t : src.tensors) bytes += t.data.size(), params += t.n_elements();
            const auto t0 = std::chrono::steady_clock::now();
            const engine::Model model = engine::load_model(src);
            const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            eval::SpeedOptions speed = args->speed;
            speed.kv = kv_cache_config(args->kv, model);
            const int64_t kv_positions = std::max<int64_t>({speed.n_prompt, speed.depth + speed.n_gen, 1}) + 1;
            std::string kv_summary;  // from a cache of the size measure_speed allocates, freed before it runs
            size_t kv_bytes = 0;
            {
              const engine::KVCache probe = engine::make_kv_cache(model, kv_positions, speed.kv);
              kv_summary = kv_cache_summary(probe);
              kv_bytes = probe.bytes();
            }
            const eval::SpeedResult r = eval::measure_speed(model, speed);
            rusage usage{};
            getrusage(RUSAGE_SELF, &usage);
            const double peak_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB
            const double bpw = params ? 8.0 * static_cast<double>(bytes) / static_cast<double>(params) : 0.0;
            using S = eval::SpeedResult;
            if (args->json) {
              nlohmann::json j;
              j["model"] = path;
              j["size_bytes"] = bytes;
              j["n_params"] = params;
              j["bits_per_weight"] = bpw;
              j["n_prompt"] = args->speed.n_prompt;
              j["n_gen"] = args->speed.n_gen;
              j["depth"] = args->speed.depth;
              j["kv_cache_bytes"] = kv_bytes;
              j["kv_cache_positions"] = kv_positions;
              j["threads"] = engine::num_threads();
              j["prefill_tps"] = r.prefill_tps;
              j["decode_tps"] = r.decode_tps;
              j["first_token_ms"] = r.first_token_ms;
              j["load_seconds"] = load_s;
              j["peak_rss_mib"] = peak_mib;
              std::printf("%s\n", j.dump().c_str());
              return 0;
            }
            std::printf("model:        %s\n", path.c_str());
            std::printf("size:         %.2f MiB, %.2fM parameters, %.2f bits per weight\n", bytes / 1048576.0,
                        params / 1e6, bpw);
            std::printf("load:         %.2f s\n", load_s);
            if (!r.prefill_tps.empty())
              std::printf("prefill %-5lld %10.2f ± %.2f tokens/s\n", static_cast<long long>(args->speed.n_prompt),
                          S::mean(r.prefill_tps), S::stddev(r.prefill_tps));
            if (!r.decode_tps.empty())
              std::printf("decode  %-5lld %10.2f ± %.2f tokens/s%s\n", static_cast<long long>(args->speed.n_gen),
                          S::mean(r.decode_tps), S::stddev(r.decode_tps),
                          args->speed.depth ? (" after " + std::to_string(args->speed.depth) + " tokens").c_str() : "");
            if (!r.prefill_tps.empty()) std::printf("first token:  %.1f ms\n", r.first_token_ms);
            std::printf("%s\n", kv_summary.c_str());
            std::printf("peak RSS:     %.1f MiB\n", peak_mib);
            return 0;
          }};
}

}  // namespace optiq::cli
