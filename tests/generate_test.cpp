// `optiq generate`: sampling flags (a seed reproduces, temperature 0 is the greedy path) and
// --chat (the model's template with one BOS), on stories260K.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>

#include "gguf_copy.h"
#include "test_util.h"

namespace optiq {
namespace {

using test::run_optiq;
using test::ScratchDir;

std::string stories() { return test::stories260k().string(); }

// stories260K with a chat template that writes BOS itself, as many templates do.
std::string stories_with_template(const ScratchDir& dir) {
  const std::string path = (dir / "chat.gguf").string();
  test::copy_gguf_with(stories(), path, "tokenizer.chat_template",
                       GgufValue::string("{{ bos_token }}{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
                                         "{% if add_generation_prompt %}assistant:{% endif %}"));
  return path;
}

nlohmann::json read_json(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

TEST(GenerateCli, SeedReproducesAndIsPrinted) {
  const std::string cmd = "generate " + stories() + " -p 'Once upon a time' -n 30 --temp 1.0 --top-k 0 --top-p 1 --min-p 0";
  auto a = run_optiq(cmd + " --seed 1234");
  auto b = run_optiq(cmd + " --seed 1234");
  ASSERT_EQ(a.exit_code, 0) << a.output;
  EXPECT_EQ(a.output, b.output);
  EXPECT_NE(a.output.find("seed 1234"), std::string::npos) << a.output;
  // Different seeds at temperature 1 over 30 tokens of a 512-token vocabulary: different text.
  EXPECT_NE(run_optiq(cmd + " --seed 99").output, a.output);
  // Without --seed a random one is drawn and printed.
  auto r = run_optiq(cmd);
  EXPECT_NE(r.output.find("seed "), std::string::npos) << r.output;
}

TEST(GenerateCli, TemperatureZeroIsGreedy) {
  auto greedy = run_optiq("generate " + stories() + " -p 'Once upon a time' -n 12");
  auto zero = run_optiq("generate " + stories() + " -p 'Once upon a time' -n 12 --temp 0 --top-k 3 --seed 5");
  ASSERT_EQ(greedy.exit_code, 0) << greedy.output;
  EXPECT_EQ(greedy.output, zero.output);
  EXPECT_NE(greedy.output.find(", there was a little girl"), std::string::npos) << greedy.output;
}

TEST(GenerateCli, SpeculativeDecodingGivesTheGreedyText) {
  const std::string cmd = "generate " + stories() + " -p 'Once upon a time' -n 60";
  const auto plain = run_optiq(cmd);
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  const std::string text = plain.output.substr(0, plain.output.size() - 1);  // without the final newline
  for (const std::string& spec : {std::string(" --spec ngram"), " --draft " + stories() + " --draft-max 3"}) {
    const auto r = run_optiq(cmd + spec);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output.rfind(text, 0), 0u) << spec << ": " << r.output;
    EXPECT_NE(r.output.find("speculative decoding:"), std::string::npos) << r.output;
  }
  EXPECT_NE(run_optiq(cmd + " --draft " + stories() + " --temp 0.8").exit_code, 0) << "sampling is refused for now";
  EXPECT_EQ(run_optiq(cmd + " --spec lookahead").exit_code, 2);
}

TEST(GenerateCli, RepeatPenaltyChangesTheGreedyText) {
  const std::string cmd = "generate " + stories() + " -p 'Once upon a time' -n 40";
  const auto plain = run_optiq(cmd), penalized = run_optiq(cmd + " --repeat-penalty 1.5");
  ASSERT_EQ(penalized.exit_code, 0) << penalized.output;
  EXPECT_NE(plain.output, penalized.output);
}

TEST(GenerateCli, ChatRendersTheTemplateWithOneBos) {
  ScratchDir dir;
  const std::string model = stories_with_template(dir);
  const auto out = dir / "lp.json";
  auto r = run_optiq("generate " + model + " --chat --system 'Be kind.' -p 'Tell a story.' -n 3 --dump-logprobs " +
                     out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const nlohmann::json j = read_json(out);
  const auto n_prompt = j["n_prompt"].get<size_t>();
  const std::vector<int32_t> tokens(j["tokens"].begin(), j["tokens"].begin() + static_cast<ptrdiff_t>(n_prompt));

  // The same conversation as plain text, tokenized with BOS added once.
  auto ids = run_optiq("tokenize --ids " + stories() + " 'system: Be kind.\nuser: Tell a story.\nassistant:'");
  ASSERT_EQ(ids.exit_code, 0) << ids.output;
  EXPECT_EQ(tokens, nlohmann::json::parse(ids.output).get<std::vector<int32_t>>());
  ASSERT_GE(tokens.size(), 2u);
  EXPECT_EQ(tokens[0], 1);
  EXPECT_NE(tokens[1], 1);

  // A model without a template cannot chat.
  auto none = run_optiq("generate " + stories() + " --chat -p 'Hi'");
  EXPECT_EQ(none.exit_code, 2) << none.output;
}

}  // namespace
}  // namespace optiq
