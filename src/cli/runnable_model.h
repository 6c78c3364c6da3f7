// The model a command runs on the engine: the argument resolved to a local path, its weights
// loaded, and its tokenizer, checked to fit the model's vocabulary.
#pragma once

#include <string>

#include "engine/model.h"
#include "model/tokenizer.h"

namespace optiq::cli {

struct RunnableModel {
  std::string path;    // the resolved model path (.gguf or HF folder)
  engine::Model model;
  Tokenizer tok;
};

// `arg` as users give it (see resolve_model_argument). InputError when the tokenizer has more
// tokens than the model's vocabulary.
RunnableModel load_runnable_model(const std::string& arg);

}  // namespace optiq::cli
