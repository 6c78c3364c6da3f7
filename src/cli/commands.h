// The optiq subcommands. Each registers its options on the CLI11 app and returns the action to
// run once parsing succeeded; main() maps exceptions to exit codes.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace optiq::cli {

struct Command {
  CLI::App* subcommand;      // owned by the app
  std::function<int()> run;  // called after a successful parse; returns the exit code
};

Command register_info(CLI::App& app);
Command register_convert(CLI::App& app);
Command register_tokenize(CLI::App& app);
Command register_template(CLI::App& app);
Command register_generate(CLI::App& app);
Command register_benchmark(CLI::App& app);
Command register_calib_mix(CLI::App& app);
Command register_perplexity(CLI::App& app);
Command register_quantize(CLI::App& app);
Command register_imatrix(CLI::App& app);
Command register_eval(CLI::App& app);
Command register_pareto(CLI::App& app);
Command register_latency(CLI::App& app);
Command register_kv_cache(CLI::App& app);
Command register_serve(CLI::App& app);
Command register_lora(CLI::App& app);
// `optiq lora train` and `optiq lora info`, added to the lora subcommand (cmd_lora_train.cpp).
Command add_lora_train(CLI::App& lora);
Command add_lora_info(CLI::App& lora);

// A model argument as users give it (folder, .gguf, or hub id org/name[@rev]) -> local path.
std::string resolve_model_argument(const std::string& arg);

}  // namespace optiq::cli
