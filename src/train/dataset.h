// Training data for `optiq lora train`, read the way mlx-lm's `mlx_lm.lora` reads it, so a data
// folder prepared for mlx-lm trains the same tokens here.
//
// DATA is a JSONL file (gzip-compressed too), or a folder holding train.jsonl and optionally
// valid.jsonl (test.jsonl, if there, is not read: training does not use it). Each non-blank line
// is one JSON object whose keys choose its format, in mlx-lm's order of precedence (other keys
// are ignored):
//   {"prompt": P, "completion": C}  "completions": the chat template renders
//                                   [{"role":"user","content":P}, {"role":"assistant","content":C}]
//                                   ("tools" passed along when present, as mlx-lm does). A model
//                                   without a chat template gets the text P + C instead,
//                                   tokenized as a "text" example (BOS and EOS as below).
//   {"messages": [...], "tools": [...]}  "chat": OpenAI-style messages through the chat template,
//                                   tools optional.
//   {"text": T}                     "text": T tokenized with BOS when the vocabulary adds one (as
//                                   `optiq tokenize` does by default), then EOS appended unless
//                                   T already ends with it: the model learns where text stops.
// Every line of a file has the first line's format; mlx-lm picks one format per file, so a mix
// is a mistake worth stopping on.
//
// Chat renders are tokenized as `optiq generate --chat` and `optiq serve` tokenize their
// prompts (chat_prompt): special tokens parsed, BOS added when the vocabulary says so, and a
// BOS the template writes itself dropped first, so an example starts with exactly one BOS and
// training sees the same tokens inference will.
//
// Prompt masking (mlx-lm's --mask-prompt): only the last message (the completion, or the last
// message of a chat) is trained on. The prompt is the template's render of every message but
// the last with the generation prompt opened (for completions: the user message alone), and
// n_prompt is its token count. That render must be a token prefix of the whole example's, or
// the split is meaningless and the line is refused. Text examples have no prompt to mask.
//
// Examples longer than max_tokens are cut to max_tokens, as mlx-lm's batching does (it warns;
// here they are counted). An example left with no token to train on is refused.
//
// Every problem in the data is an InputError naming the file and the line.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace optiq::train {

struct Example {
  std::vector<int32_t> tokens;  // [n] the rendered, tokenized example, at most max_tokens
  // Leading tokens not trained on: token i (i >= 1) is a target, predicted from tokens[0..i-1],
  // when i >= max(1, n_prompt). 0 without prompt masking.
  int64_t n_prompt = 0;
  int64_t line = 0;  // 1-based line of the example in its file, for messages
};

struct DataSplit {
  std::string path;              // the JSONL file, for messages
  std::string format;            // "text", "completions" or "chat": every line's format
  std::vector<Example> examples;  // in file order, at least one
  int64_t n_truncated = 0;       // examples that were longer than max_tokens and were cut
};

struct TrainingData {
  DataSplit train;
  std::optional<DataSplit> valid;  // nullopt: no validation data was given or found
};

// One JSONL file. `tmpl` is the model's chat template, nullptr when it has none (then chat
// examples are an error and completions are read as text). Throws InputError for a missing or
// empty file, and for any line that is not a valid example (see above).
DataSplit read_split(const std::filesystem::path& jsonl, const Tokenizer& tok, const ChatTemplate* tmpl,
                     bool mask_prompt, int64_t max_tokens);

// `data` is a JSONL file (the training split) or a folder with train.jsonl and optionally
// valid.jsonl; `valid`, when given, is the validation file instead of the folder's. Throws
// InputError when `data` does not exist or a folder has no train.jsonl, and as read_split.
TrainingData read_training_data(const std::filesystem::path& data, const std::optional<std::filesystem::path>& valid,
                                const Tokenizer& tok, const ChatTemplate* tmpl, bool mask_prompt,
                                int64_t max_tokens);

}  // namespace optiq::train
