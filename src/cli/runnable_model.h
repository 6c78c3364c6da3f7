// The model a command runs on the engine: the argument resolved to a local path, its weights
// loaded, and its tokenizer, checked to fit the model's vocabulary.
#pragma once

#include <string>
#include <vector>

#include "cli/lora_options.h"
#include "engine/model.h"
#include "model/tokenizer.h"

namespace optiq::cli {

struct RunnableModel {
  std::string path;    // the resolved model path (.gguf or HF folder)
  engine::Model model;  // model.deltas: the adapters' (--lora), applied to every pass
  Tokenizer tok;
  LoadedAdapters adapters;
};

// `arg` as users give it (see resolve_model_argument), with the adapters of `lora_specs`
// ("PATH[:SCALE]") applied. InputError when the tokenizer has more tokens than the model's
// vocabulary, or for an adapter that does not fit the model.
RunnableModel load_runnable_model(const std::string& arg, const std::vector<std::string>& lora_specs = {});

}  // namespace optiq::cli
