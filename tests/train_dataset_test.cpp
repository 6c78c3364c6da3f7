// The training-data loader (train/dataset.h) with real tokenizers and chat templates: SmolLM2's
// (ChatML, no BOS), Mistral v0.3's (a template that writes BOS, a vocabulary that adds it),
// Qwen2.5's (tools), DeepSeek R1's (a generation prompt the full render does not start with), and
// stories260K (no template). Chat renders are checked against mlx-lm's tokens: the template's
// text tokenized without adding special tokens, as apply_chat_template(tokenize=True) does.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>

#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "test_util.h"
#include "train/dataset.h"
#include "util/error.h"

namespace optiq::train {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;
using test::ScratchDir;

constexpr int64_t kNoLimit = int64_t{1} << 30;

struct Model {
  Tokenizer tok;
  std::optional<ChatTemplate> tmpl;  // nullopt: the model has none

  const ChatTemplate* tmpl_ptr() const { return tmpl ? &*tmpl : nullptr; }
};

// A model's files under ../shared/models: the tokenizer, and the chat template ("" for none).
struct ModelFiles {
  const char* tokenizer;
  const char* chat_template;
};
constexpr ModelFiles kSmolLM2{"templates/smollm2-135m-instruct", "templates/smollm2-135m-instruct"};
constexpr ModelFiles kMistral{"templates/mistral-7b-instruct-v0.3", "templates/mistral-7b-instruct-v0.3"};
constexpr ModelFiles kQwen25{"qwen2.5-tokenizer", "qwen2.5-tokenizer"};
// DeepSeek-R1-Distill-Qwen's template on the Qwen2.5 vocabulary it was trained from.
constexpr ModelFiles kDeepSeekR1{"qwen2.5-tokenizer", "templates/deepseek-r1-distill-qwen-1.5b"};
constexpr ModelFiles kStories260K{"stories260K/stories260K.gguf", ""};

// Each model is loaded once: the tokenizer.json files take a while to read.
const Model& model(const ModelFiles& files) {
  static std::map<std::pair<std::string, std::string>, Model> loaded;
  const auto key = std::make_pair(std::string(files.tokenizer), std::string(files.chat_template));
  auto it = loaded.find(key);
  if (it == loaded.end()) {
    const fs::path models = test::shared_dir() / "models";
    Model m{load_tokenizer(models / files.tokenizer), std::nullopt};
    if (!key.second.empty()) m.tmpl = load_chat_template(models / files.chat_template);
    it = loaded.emplace(key, std::move(m)).first;
  }
  return it->second;
}

fs::path write_lines(const fs::path& file, const std::vector<std::string>& lines) {
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  test::write_text(file, text);
  return file;
}

ojson message(const std::string& role, const std::string& content) { return {{"role", role}, {"content", content}}; }

// mlx-lm's tokens for a conversation: the template's text, special tokens parsed, none added.
std::vector<int32_t> reference_tokens(const Model& m, const ojson& messages, bool add_generation_prompt,
                                      const ojson& tools = nullptr) {
  ChatRequest req;
  req.messages = messages;
  req.tools = tools;
  req.add_generation_prompt = add_generation_prompt;
  return m.tok.encode(render_chat(*m.tmpl, req), /*add_special=*/false, /*parse_special=*/true);
}

// A masked example: its first n_prompt tokens are mlx-lm's prompt (prompt_messages rendered
// with the generation prompt), and the trained rest decodes to `targets`.
void expect_prompt_masked(const Model& m, const Example& ex, const ojson& prompt_messages, const ojson& tools,
                          const std::string& targets) {
  const std::vector<int32_t> prompt = reference_tokens(m, prompt_messages, /*add_generation_prompt=*/true, tools);
  ASSERT_EQ(ex.n_prompt, static_cast<int64_t>(prompt.size()));
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), ex.tokens.begin()));
  EXPECT_EQ(m.tok.decode(std::vector<int32_t>(ex.tokens.begin() + ex.n_prompt, ex.tokens.end())), targets);
}

std::string split_error(const fs::path& file, const Model& m, bool mask_prompt, int64_t max_tokens = kNoLimit) {
  try {
    read_split(file, m.tok, m.tmpl_ptr(), mask_prompt, max_tokens);
  } catch (const InputError& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TrainDataset, TextGetsBosAndOneEos) {
  ScratchDir dir;
  const Model& m = model(kStories260K);
  const fs::path file = write_lines(dir / "train.jsonl", {R"({"text": "Once upon a time", "source": "ignored"})",
                                                          R"({"text": "The end.</s>"})"});
  const DataSplit split = read_split(file, m.tok, m.tmpl_ptr(), /*mask_prompt=*/false, kNoLimit);
  EXPECT_EQ(split.format, "text");
  EXPECT_EQ(split.path, file.string());
  ASSERT_EQ(split.examples.size(), 2u);
  std::vector<int32_t> expected = m.tok.encode("Once upon a time", /*add_special=*/true, /*parse_special=*/true);
  expected.push_back(m.tok.eos);
  ASSERT_EQ(m.tok.add_bos, true);
  EXPECT_EQ(expected.front(), m.tok.bos);
  EXPECT_EQ(split.examples[0].tokens, expected);
  EXPECT_EQ(split.examples[0].n_prompt, 0);
  EXPECT_EQ(split.examples[0].line, 1);
  // A text that already ends with EOS does not get a second one.
  const std::vector<int32_t>& second = split.examples[1].tokens;
  EXPECT_EQ(second, m.tok.encode("The end.</s>", true, true));
  EXPECT_EQ(std::count(second.begin(), second.end(), m.tok.eos), 1);
  EXPECT_EQ(split.n_truncated, 0);
}

TEST(TrainDataset, CompletionsRenderAsUserAndAssistantTurns) {
  ScratchDir dir;
  const Model& m = model(kSmolLM2);
  const fs::path file = write_lines(dir / "train.jsonl", {R"({"prompt": "What is 2+2?", "completion": "4."})"});
  const ojson user = message("user", "What is 2+2?");
  const ojson both = ojson::array({user, message("assistant", "4.")});

  const DataSplit plain = read_split(file, m.tok, m.tmpl_ptr(), /*mask_prompt=*/false, kNoLimit);
  EXPECT_EQ(plain.format, "completions");
  ASSERT_EQ(plain.examples.size(), 1u);
  EXPECT_EQ(plain.examples[0].tokens, reference_tokens(m, both, false));
  EXPECT_EQ(plain.examples[0].n_prompt, 0);

  const Example masked = read_split(file, m.tok, m.tmpl_ptr(), /*mask_prompt=*/true, kNoLimit).examples.at(0);
  EXPECT_EQ(masked.tokens, plain.examples[0].tokens);
  expect_prompt_masked(m, masked, ojson::array({user}), nullptr, "4.<|im_end|>\n");
}

TEST(TrainDataset, ChatMasksAllButTheLastMessage) {
  ScratchDir dir;
  const Model& m = model(kSmolLM2);
  const ojson messages = ojson::array({message("system", "Be brief."), message("user", "Hi."), message("assistant", "Hello."),
                                       message("user", "Name a colour."), message("assistant", "Blue.")});
  const fs::path file = write_lines(dir / "train.jsonl", {ojson{{"messages", messages}}.dump()});

  const Example plain = read_split(file, m.tok, m.tmpl_ptr(), /*mask_prompt=*/false, kNoLimit).examples.at(0);
  EXPECT_EQ(plain.tokens, reference_tokens(m, messages, false));
  EXPECT_EQ(plain.n_prompt, 0);

  const DataSplit split = read_split(file, m.tok, m.tmpl_ptr(), /*mask_prompt=*/true, kNoLimit);
  EXPECT_EQ(split.format, "chat");
  const Example& masked = split.examples.at(0);
  expect_prompt_masked(m, masked, ojson(messages.begin(), messages.end() - 1), nullptr, "Blue.<|im_end|>\n");
}

TEST(TrainDataset, ChatPassesToolsToTheTemplate) {
  ScratchDir dir;
  const Model& m = model(kQwen25);
  const ojson tools = ojson::parse(R"([{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}])");
  const ojson messages = ojson::array({message("user", "Weather in Oslo?"), message("assistant", "Let me check.")});
  const fs::path file = write_lines(dir / "train.jsonl", {ojson{{"messages", messages}, {"tools", tools}}.dump()});
  const Example ex = read_split(file, m.tok, m.tmpl_ptr(), /*mask_prompt=*/true, kNoLimit).examples.at(0);
  EXPECT_EQ(ex.tokens, reference_tokens(m, messages, false, tools));
  EXPECT_NE(m.tok.decode(ex.tokens).find("\"name\": \"get_weather\""), std::string::npos);
  expect_prompt_masked(m, ex, ojson::array({messages[0]}), tools, "Let me check.<|im_end|>\n");
}

// Mistral's template writes BOS and its vocabulary adds one: the example starts with one BOS,
// as mlx-lm's (and `optiq generate --chat`'s) tokens do.
TEST(TrainDataset, TemplateBosIsNotDoubled) {
  ScratchDir dir;
  const Model& m = model(kMistral);
  ASSERT_TRUE(m.tok.add_bos);
  const fs::path file = write_lines(dir / "train.jsonl", {R"({"prompt": "Hi", "completion": "Hello there."})"});
  const Example ex = read_split(file, m.tok, m.tmpl_ptr(), /*mask_prompt=*/true, kNoLimit).examples.at(0);
  ASSERT_GE(ex.tokens.size(), 2u);
  EXPECT_EQ(ex.tokens[0], m.tok.bos);
  EXPECT_NE(ex.tokens[1], m.tok.bos);
  EXPECT_EQ(ex.tokens, reference_tokens(m, ojson::array({message("user", "Hi"), message("assistant", "Hello there.")}), false));
  expect_prompt_masked(m, ex, ojson::array({message("user", "Hi")}), nullptr, "Hello there.</s>");
}

TEST(TrainDataset, CompletionsWithoutTemplateAreText) {
  ScratchDir dir;
  const Model& m = model(kStories260K);
  const fs::path file = write_lines(dir / "train.jsonl", {R"({"prompt": "Once upon a time", "completion": " there was a cat."})"});
  const DataSplit split = read_split(file, m.tok, m.tmpl_ptr(), /*mask_prompt=*/true, kNoLimit);
  EXPECT_EQ(split.format, "completions");
  const Example& ex = split.examples.at(0);
  std::vector<int32_t> expected = m.tok.encode("Once upon a time there was a cat.", true, true);
  expected.push_back(m.tok.eos);
  EXPECT_EQ(ex.tokens, expected);
  EXPECT_EQ(ex.n_prompt, static_cast<int64_t>(m.tok.encode("Once upon a time", true, true).size()));
}

TEST(TrainDataset, LongExamplesAreTruncatedAndCounted) {
  ScratchDir dir;
  const Model& m = model(kSmolLM2);
  const fs::path file = write_lines(dir / "train.jsonl", {R"({"text": "Hi"})",
                                                          R"({"text": "one two three four five six seven eight nine ten"})"});
  const DataSplit split = read_split(file, m.tok, m.tmpl_ptr(), /*mask_prompt=*/false, /*max_tokens=*/6);
  ASSERT_EQ(split.examples.size(), 2u);
  EXPECT_EQ(split.n_truncated, 1);
  EXPECT_EQ(split.examples[0].tokens.size(), 2u);  // "Hi", EOS
  const std::vector<int32_t> full = m.tok.encode("one two three four five six seven eight nine ten", true, true);
  EXPECT_EQ(split.examples[1].tokens, std::vector<int32_t>(full.begin(), full.begin() + 6));
}

TEST(TrainDataset, NothingLeftToTrainOnIsAnError) {
  ScratchDir dir;
  const Model& m = model(kSmolLM2);
  const fs::path file = write_lines(dir / "data.jsonl", {R"({"prompt": "A long question with many words", "completion": "Yes."})"});
  const int64_t n_prompt = read_split(file, m.tok, m.tmpl_ptr(), true, kNoLimit).examples.at(0).n_prompt;
  const std::string e = split_error(file, m, /*mask_prompt=*/true, /*max_tokens=*/n_prompt);
  EXPECT_NE(e.find("data.jsonl: line 1: nothing to train on"), std::string::npos) << e;
  // Without masking the same cut leaves targets.
  EXPECT_EQ(read_split(file, m.tok, m.tmpl_ptr(), false, n_prompt).examples.at(0).tokens.size(), static_cast<size_t>(n_prompt));
  // An empty text is EOS alone: one token, nothing predicted.
  write_lines(file, {R"({"text": "x"})", R"({"text": ""})"});
  EXPECT_NE(split_error(file, m, false).find("data.jsonl: line 2: nothing to train on"), std::string::npos);
}

TEST(TrainDataset, FolderHoldsTrainAndOptionalValid) {
  ScratchDir dir;
  const Model& m = model(kSmolLM2);
  fs::create_directory(dir / "data");
  write_lines(dir / "data/train.jsonl", {R"({"text": "a"})", R"({"text": "b"})"});
  write_lines(dir / "data/test.jsonl", {"not read"});
  const TrainingData train_only = read_training_data(dir / "data", std::nullopt, m.tok, m.tmpl_ptr(), false, kNoLimit);
  EXPECT_EQ(train_only.train.path, (dir / "data/train.jsonl").string());
  EXPECT_EQ(train_only.train.examples.size(), 2u);
  EXPECT_FALSE(train_only.valid);

  write_lines(dir / "data/valid.jsonl", {R"({"prompt": "p", "completion": "c"})"});
  const TrainingData both = read_training_data(dir / "data", std::nullopt, m.tok, m.tmpl_ptr(), false, kNoLimit);
  ASSERT_TRUE(both.valid);
  EXPECT_EQ(both.valid->path, (dir / "data/valid.jsonl").string());
  EXPECT_EQ(both.valid->format, "completions");

  // An explicit validation file wins over the folder's; a file as DATA is the training split.
  write_lines(dir / "other.jsonl", {R"({"text": "v1"})", R"({"text": "v2"})", R"({"text": "v3"})"});
  const TrainingData explicit_valid = read_training_data(dir / "data", dir / "other.jsonl", m.tok, m.tmpl_ptr(), false, kNoLimit);
  ASSERT_TRUE(explicit_valid.valid);
  EXPECT_EQ(explicit_valid.valid->examples.size(), 3u);
  const TrainingData from_file = read_training_data(dir / "other.jsonl", std::nullopt, m.tok, m.tmpl_ptr(), false, kNoLimit);
  EXPECT_EQ(from_file.train.examples.size(), 3u);
  EXPECT_FALSE(from_file.valid);
}

TEST(TrainDataset, MissingDataIsNamed) {
  ScratchDir dir;
  const Model& m = model(kSmolLM2);
  auto error = [&](const fs::path& data, const std::optional<fs::path>& valid) -> std::string {
    try {
      read_training_data(data, valid, m.tok, m.tmpl_ptr(), false, kNoLimit);
    } catch (const InputError& e) {
      return e.what();
    }
    return "(no error)";
  };
  EXPECT_NE(error(dir / "absent", std::nullopt).find((dir / "absent").string()), std::string::npos);
  fs::create_directory(dir / "empty_folder");
  const std::string no_train = error(dir / "empty_folder", std::nullopt);
  EXPECT_NE(no_train.find("empty_folder"), std::string::npos) << no_train;
  EXPECT_NE(no_train.find("train.jsonl"), std::string::npos) << no_train;
  write_lines(dir / "train.jsonl", {R"({"text": "a"})"});
  EXPECT_NE(error(dir / "train.jsonl", dir / "nope.jsonl").find("nope.jsonl"), std::string::npos);
  write_lines(dir / "blank.jsonl", {"", "  "});
  const std::string blank = error(dir / "blank.jsonl", std::nullopt);
  EXPECT_NE(blank.find("blank.jsonl: no examples"), std::string::npos) << blank;
}

struct BadData {
  const char* what;
  std::vector<std::string> lines;
  ModelFiles model;
  bool mask_prompt;
  int line;            // the line the error names
  const char* reason;  // a part of the message
};

TEST(TrainDataset, BadLinesNameTheFileAndLine) {
  const std::string chat = R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]})";
  const BadData cases[] = {
      {"invalid JSON", {R"({"text": "a"})", R"({"text": )"}, kSmolLM2, false, 2, "not a JSON object"},
      {"not an object", {"[1, 2]"}, kSmolLM2, false, 1, "not a JSON object"},
      {"no known keys", {R"({"input": "a", "output": "b"})"}, kSmolLM2, false, 1, "expected \"text\""},
      {"prompt alone", {R"({"prompt": "a"})"}, kSmolLM2, false, 1, "only one of them"},
      {"text not a string", {R"({"text": 5})"}, kSmolLM2, false, 1, "\"text\""},
      {"completion not a string", {R"({"prompt": "a", "completion": ["b"]})"}, kSmolLM2, false, 1, "\"completion\""},
      {"messages not an array", {R"({"messages": "Hi"})"}, kSmolLM2, false, 1, "\"messages\" must be"},
      {"messages empty", {R"({"messages": []})"}, kSmolLM2, false, 1, "\"messages\" must be"},
      {"message without role", {R"({"messages": [{"content": "Hi"}]})"}, kSmolLM2, false, 1, "messages[0]"},
      {"content not a string", {R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": 3}]})"},
       kSmolLM2, false, 1, "messages[1]: \"content\""},
      {"tools not an array", {R"({"messages": [{"role": "user", "content": "Hi"}], "tools": {"name": "f"}})"}, kSmolLM2, false, 1,
       "\"tools\""},
      {"mixed formats", {R"({"text": "a"})", "", chat}, kSmolLM2, false, 3, "a chat example in a file of text examples (line 1)"},
      {"mask on text", {R"({"text": "a"})"}, kSmolLM2, true, 1, "--mask-prompt needs prompt/completion or messages data"},
      {"chat without a template", {chat}, kStories260K, false, 1, "chat template"},
      {"template raises", {R"({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]})"}, kMistral, false, 1,
       "the chat template failed"},
      // R1's generation prompt opens <think>, which its render of a finished turn leaves out.
      {"prompt not a prefix", {chat}, kDeepSeekR1, true, 1, "not a token prefix"},
  };
  for (const BadData& c : cases) {
    SCOPED_TRACE(c.what);
    ScratchDir dir;
    const fs::path file = write_lines(dir / "bad_data.jsonl", c.lines);
    const std::string e = split_error(file, model(c.model), c.mask_prompt);
    EXPECT_NE(e.find(file.string() + ": line " + std::to_string(c.line) + ": "), std::string::npos) << e;
    EXPECT_NE(e.find(c.reason), std::string::npos) << e;
  }
}

}  // namespace
}  // namespace optiq::train
