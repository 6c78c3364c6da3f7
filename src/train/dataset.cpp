// Reading mlx-lm-style training data: each line's format, its render through the chat template
// and tokenization, prompt masking and truncation. The rules are in dataset.h.
#include "train/dataset.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "eval/jsonl.h"
#include "model/chat_prompt.h"
#include "util/error.h"

namespace optiq::train {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

enum class Format { Text, Completions, Chat };

const char* format_name(Format f) {
  switch (f) {
    case Format::Text: return "text";
    case Format::Completions: return "completions";
    case Format::Chat: return "chat";
  }
  return "?";
}

[[noreturn]] void fail(const std::string& file, const eval::JsonlRecord& r, const std::string& what) {
  throw InputError(file, std::nullopt, "line " + std::to_string(r.line) + ": " + what);
}

// The format the record's keys choose, in mlx-lm's order of precedence.
Format format_of(const std::string& file, const eval::JsonlRecord& r) {
  const ojson& j = r.value;
  if (j.contains("prompt") && j.contains("completion")) return Format::Completions;
  if (j.contains("messages")) return Format::Chat;
  if (j.contains("text")) return Format::Text;
  if (j.contains("prompt") || j.contains("completion"))
    fail(file, r, "\"prompt\" and \"completion\" come together; this example has only one of them");
  fail(file, r, "not a training example: expected \"text\", \"prompt\" and \"completion\", or \"messages\"");
}

// The template indexes messages and reads their fields freely; a malformed one is named here
// rather than by whatever the template would trip on.
void check_messages(const std::string& file, const eval::JsonlRecord& r) {
  const ojson& messages = r.value.at("messages");
  if (!messages.is_array() || messages.empty())
    fail(file, r, "\"messages\" must be a non-empty array of {\"role\", \"content\"} objects");
  for (size_t i = 0; i < messages.size(); ++i) {
    const ojson& m = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m.at("role").is_string())
      fail(file, r, where + " is not an object with a string \"role\"");
    // An assistant turn that only calls tools has no text: content may be absent or null there.
    const bool has_content = m.contains("content") && !m.at("content").is_null();
    if (has_content ? !m.at("content").is_string() : !m.contains("tool_calls"))
      fail(file, r, where + ": \"content\" must be a string (null only beside \"tool_calls\")");
  }
}

// "tools" as the template receives it: null when the example has none.
ojson tools_of(const std::string& file, const eval::JsonlRecord& r) {
  if (!r.value.contains("tools") || r.value.at("tools").is_null()) return nullptr;
  if (!r.value.at("tools").is_array()) fail(file, r, "\"tools\" must be an array of tool schemas");
  return r.value.at("tools");
}

// Turns one record of a known format into its tokens and, with prompt masking, its n_prompt.
class ExampleRenderer {
 public:
  ExampleRenderer(const std::string& file, const Tokenizer& tok, const ChatTemplate* tmpl, bool mask_prompt)
      : file_(file), tok_(tok), tmpl_(tmpl), mask_prompt_(mask_prompt) {}

  Example render(const eval::JsonlRecord& r, Format format) const {
    switch (format) {
      case Format::Text: {
        if (mask_prompt_)
          fail(file_, r, "--mask-prompt needs prompt/completion or messages data; a \"text\" example has no prompt");
        return {.tokens = text_tokens(eval::string_field(r, file_, "text")), .line = r.line};
      }
      case Format::Completions: {
        const std::string prompt = eval::string_field(r, file_, "prompt");
        const std::string completion = eval::string_field(r, file_, "completion");
        if (!tmpl_) {
          Example ex{.tokens = text_tokens(prompt + completion), .line = r.line};
          if (mask_prompt_)
            ex.n_prompt = prompt_length(r, ex.tokens, tok_.encode(prompt, /*add_special=*/true, /*parse_special=*/true));
          return ex;
        }
        ojson messages = ojson::array();
        messages.push_back({{"role", "user"}, {"content", prompt}});
        messages.push_back({{"role", "assistant"}, {"content", completion}});
        return conversation(r, messages, tools_of(file_, r));
      }
      case Format::Chat: {
        check_messages(file_, r);
        if (!tmpl_) fail(file_, r, "chat examples need a chat template, and the model has none");
        return conversation(r, r.value.at("messages"), tools_of(file_, r));
      }
    }
    fail(file_, r, "unknown format");
  }

 private:
  // As `optiq tokenize` reads text (BOS as the vocabulary says, special tokens parsed), with EOS
  // appended as mlx-lm does.
  std::vector<int32_t> text_tokens(const std::string& text) const {
    std::vector<int32_t> ids = tok_.encode(text, /*add_special=*/true, /*parse_special=*/true);
    if (tok_.eos >= 0 && (ids.empty() || ids.back() != tok_.eos)) ids.push_back(tok_.eos);
    return ids;
  }

  // The conversation as chat_prompt renders it for inference (one BOS), with the assistant's
  // turn opened or not: add_generation_prompt is a template variable, which ChatRequest::vars
  // override.
  std::vector<int32_t> chat_tokens(const eval::JsonlRecord& r, const ojson& messages, const ojson& tools,
                                   bool add_generation_prompt) const {
    std::string text;
    try {
      text = chat_prompt(*tmpl_, tok_, messages, tools, {{"add_generation_prompt", add_generation_prompt}});
    } catch (const InputError& e) {
      fail(file_, r, std::string("the chat template failed: ") + e.what());
    }
    return tok_.encode(text, /*add_special=*/true, /*parse_special=*/true);
  }

  Example conversation(const eval::JsonlRecord& r, const ojson& messages, const ojson& tools) const {
    Example ex{.tokens = chat_tokens(r, messages, tools, /*add_generation_prompt=*/false), .line = r.line};
    if (mask_prompt_) {
      const ojson all_but_last(messages.begin(), messages.end() - 1);
      ex.n_prompt = prompt_length(r, ex.tokens, chat_tokens(r, all_but_last, tools, /*add_generation_prompt=*/true));
    }
    return ex;
  }

  // The prompt's length, once it is known to be where the example's tokens begin: otherwise
  // masking n tokens would hide part of the answer or train on part of the prompt.
  int64_t prompt_length(const eval::JsonlRecord& r, const std::vector<int32_t>& tokens,
                        const std::vector<int32_t>& prompt) const {
    if (prompt.size() > tokens.size() || !std::equal(prompt.begin(), prompt.end(), tokens.begin()))
      fail(file_, r,
           "the prompt rendered alone is not a token prefix of the whole example, so --mask-prompt cannot tell "
           "where the last message starts");
    return static_cast<int64_t>(prompt.size());
  }

  const std::string file_;
  const Tokenizer& tok_;
  const ChatTemplate* tmpl_;
  bool mask_prompt_;
};

}  // namespace

DataSplit read_split(const fs::path& jsonl, const Tokenizer& tok, const ChatTemplate* tmpl, bool mask_prompt,
                     int64_t max_tokens) {
  DataSplit split;
  split.path = jsonl.string();
  const ExampleRenderer renderer(split.path, tok, tmpl, mask_prompt);
  std::optional<Format> file_format;
  int64_t format_line = 0;  // the line that set file_format
  for (const eval::JsonlRecord& r : eval::read_jsonl(jsonl)) {
    const Format format = format_of(split.path, r);
    if (!file_format) {
      file_format = format;
      format_line = r.line;
    } else if (format != *file_format) {
      fail(split.path, r,
           std::string("a ") + format_name(format) + " example in a file of " + format_name(*file_format) +
               " examples (line " + std::to_string(format_line) + "); one file holds one format");
    }
    Example ex = renderer.render(r, format);
    const int64_t n_rendered = static_cast<int64_t>(ex.tokens.size());
    if (n_rendered > max_tokens) {
      ex.tokens.resize(static_cast<size_t>(std::max<int64_t>(max_tokens, 0)));
      ++split.n_truncated;
    }
    const int64_t n = static_cast<int64_t>(ex.tokens.size());
    if (n <= std::max<int64_t>(1, ex.n_prompt))
      fail(split.path, r,
           "nothing to train on: the example is " + std::to_string(n_rendered) + " tokens" +
               (n < n_rendered ? ", cut to " + std::to_string(n) : std::string()) +
               (mask_prompt ? ", and its prompt is " + std::to_string(ex.n_prompt) : std::string()));
    split.examples.push_back(std::move(ex));
  }
  if (split.examples.empty()) throw InputError(split.path, std::nullopt, "no examples: every line is blank");
  split.format = format_name(*file_format);
  return split;
}

TrainingData read_training_data(const fs::path& data, const std::optional<fs::path>& valid, const Tokenizer& tok,
                                const ChatTemplate* tmpl, bool mask_prompt, int64_t max_tokens) {
  if (!fs::exists(data)) throw InputError(data.string(), std::nullopt, "no such file or folder");
  fs::path train_file = data;
  std::optional<fs::path> valid_file = valid;
  if (fs::is_directory(data)) {
    train_file = data / "train.jsonl";
    if (!fs::exists(train_file))
      throw InputError(data.string(), std::nullopt, "a data folder needs train.jsonl (and optionally valid.jsonl)");
    if (!valid_file && fs::exists(data / "valid.jsonl")) valid_file = data / "valid.jsonl";
  }
  TrainingData out;
  out.train = read_split(train_file, tok, tmpl, mask_prompt, max_tokens);
  if (valid_file) out.valid = read_split(*valid_file, tok, tmpl, mask_prompt, max_tokens);
  return out;
}

}  // namespace optiq::train
