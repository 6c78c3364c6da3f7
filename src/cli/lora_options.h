// --lora PATH[:SCALE] for the commands that run a model (generate, perplexity, eval, benchmark):
// each adapter (PEFT folder or GGUF-LoRA file) is applied unmerged to every pass, several stack.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "engine/low_rank.h"
#include "engine/model.h"
#include "lora/adapter.h"

namespace optiq::cli {

void add_lora_option(CLI::App* sub, std::vector<std::string>& specs);

struct LoadedAdapters {
  std::vector<lora::Adapter> adapters;       // the factors, in the order given
  std::vector<engine::LowRankDelta> deltas;  // every adapter's, stacked, scales applied; point into `adapters`
};

// Loads each "PATH[:SCALE]" for `model` (InputError as lora::load_adapter) and prints one line
// per adapter to stderr. Keep the result alive while the model runs with its deltas.
LoadedAdapters load_adapters(const engine::Model& model, const std::vector<std::string>& specs);

}  // namespace optiq::cli
