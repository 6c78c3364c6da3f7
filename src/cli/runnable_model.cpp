#include "cli/runnable_model.h"

#include <optional>

#include "cli/commands.h"
#include "model/model_source.h"
#include "util/error.h"

namespace optiq::cli {

RunnableModel load_runnable_model(const std::string& arg, const std::vector<std::string>& lora_specs) {
  std::string path = resolve_model_argument(arg);
  engine::Model model = engine::load_model(open_model_source(path));
  Tokenizer tok = load_tokenizer(path);
  if (tok.n_tokens() > model.hp.n_vocab)
    throw InputError(path, std::nullopt, "the tokenizer has more tokens than the model's vocabulary");
  LoadedAdapters adapters = load_adapters(model, lora_specs);
  model.deltas = adapters.deltas;  // they point into model.layers' and the adapters' heap storage, which moves keep
  return {std::move(path), std::move(model), std::move(tok), std::move(adapters)};
}

}  // namespace optiq::cli
