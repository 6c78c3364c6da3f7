#include <cstdio>
#include <vector>

#include "cli/commands.h"
#include "io/hub.h"
#include "util/error.h"

namespace optiq::cli {

std::string resolve_model_argument(const std::string& arg) {
  return hub::resolve_model_path(arg, hub::HubOptions::from_environment()).string();
}

}  // namespace optiq::cli

int main(int argc, char** argv) {
  using namespace optiq;
  CLI::App app{"optiq: measure, then quantize. Mixed-precision GGUF for llama.cpp.", "optiq"};
  app.set_version_flag("--version", std::string("optiq ") + OPTIQ_VERSION);
  app.require_subcommand(1);
  const std::vector<cli::Command> commands = {cli::register_info(app), cli::register_convert(app),
                                             cli::register_tokenize(app),
                                             cli::register_template(app),
                                             cli::register_generate(app),
                                             cli::register_benchmark(app),
                                             cli::register_calib_mix(app),
                                             cli::register_perplexity(app),
                                             cli::register_quantize(app),
                                             cli::register_imatrix(app),
                                             cli::register_eval(app),
                                             cli::register_pareto(app),
                                             cli::register_latency(app),
                                             cli::register_kv_cache(app),
                                             cli::register_serve(app),
                                             cli::register_lora(app)};
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : kExitBadInput;
  }
  try {
    for (const auto& c : commands)
      if (c.subcommand->parsed()) return c.run();
  } catch (const InputError& e) {
    std::fprintf(stderr, "optiq: error: %s\n", e.what());
    return kExitBadInput;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "optiq: error: %s\n", e.what());
    return kExitFailure;
  }
  return kExitFailure;
}
