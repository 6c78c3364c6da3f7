// Tokenizer building blocks and small end-to-end cases; the full agreement with llama.cpp and
// Hugging Face is checked by the oracle tests (tests/oracle/check_tokenizers*.{mjs,py}).
#include <gtest/gtest.h>

#include "model/pretokenize.h"
#include "model/tokenizer.h"
#include "model/unicode.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq {
namespace {

TEST(Unicode, Utf8RoundTripAndInvalidBytes) {
  const std::string s = "a\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80";  // a é 中 😀
  std::vector<uint32_t> cps;
  for (size_t pos = 0; pos < s.size();) cps.push_back(unicode::decode_utf8(s, pos));
  EXPECT_EQ(cps, (std::vector<uint32_t>{'a', 0xE9, 0x4E2D, 0x1F600}));
  std::string back;
  for (uint32_t cp : cps) unicode::append_utf8(back, cp);
  EXPECT_EQ(back, s);
  size_t pos = 0;
  EXPECT_EQ(unicode::decode_utf8("\xC3", pos), 0xFFFDu);  // truncated
  EXPECT_EQ(pos, 1u);
  EXPECT_FALSE(unicode::is_valid_utf8("\xED\xA0\x80"));  // surrogate
  EXPECT_TRUE(unicode::is_valid_utf8(s));
}

TEST(Unicode, ByteLevelAlphabetIsABijection) {
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  const std::string mapped = unicode::bytes_to_byte_level(all);
  std::string back;
  ASSERT_TRUE(unicode::byte_level_to_bytes(mapped, back));
  EXPECT_EQ(back, all);
  EXPECT_EQ(unicode::byte_to_unicode()[' '], "\xC4\xA0");   // Ġ
  EXPECT_EQ(unicode::byte_to_unicode()['\n'], "\xC4\x8A");  // Ċ
  EXPECT_EQ(unicode::byte_to_unicode()['A'], "A");
}

TEST(Unicode, NfcComposes) {
  EXPECT_EQ(unicode::nfc("cafe\xCC\x81"), "caf\xC3\xA9");
  EXPECT_EQ(unicode::nfc("plain"), "plain");
}

TEST(Pretokenize, Gpt2RegexIsUnicodeAware) {
  Regex re(pre_regex::kGpt2);
  std::vector<std::string> words{"Hello  wörld's 123 中文!!"};
  split_pieces(re, SplitBehavior::Isolated, false, words);
  EXPECT_EQ(words, (std::vector<std::string>{"Hello", " ", " wörld", "'s", " 123", " 中文", "!!"}));
}

TEST(Pretokenize, SplitBehaviors) {
  Regex re("-");
  std::vector<std::string> w{"a-b--c"};
  split_pieces(re, SplitBehavior::Removed, false, w);
  EXPECT_EQ(w, (std::vector<std::string>{"a", "b", "c"}));
  w = {"a-b"};
  split_pieces(re, SplitBehavior::MergedWithPrevious, false, w);
  EXPECT_EQ(w, (std::vector<std::string>{"a-", "b"}));
  w = {"a-b"};
  split_pieces(re, SplitBehavior::MergedWithNext, false, w);
  EXPECT_EQ(w, (std::vector<std::string>{"a", "-b"}));
  EXPECT_THROW(Regex("(unclosed"), std::invalid_argument);
}

TEST(Tokenizer, Stories260KMatchesLlamaCpp) {
  // Ids llama.cpp gives (checked by oracle_tokenizers_llama_cpp).
  const Tokenizer tok = load_tokenizer(test::stories260k());
  EXPECT_EQ(tok.model, TokenizerModel::Spm);
  EXPECT_EQ(tok.encode("Once upon a time, there was", true, true),
            (std::vector<int32_t>{1, 403, 407, 261, 378, 432, 383, 286}));
  EXPECT_EQ(tok.encode("", true, true), (std::vector<int32_t>{1}));
  EXPECT_TRUE(tok.encode("", false, true).empty());
  const auto ids = tok.encode("Hello, World!\n", false, true);
  EXPECT_EQ(tok.decode(ids), "Hello, World!\n");
  EXPECT_EQ(tok.token_to_piece(1), "<s>");
}

TEST(Tokenizer, GgufWithoutVocabularyIsAnInputError) {
  GgufMetadata md;
  EXPECT_THROW(load_gguf_tokenizer(md, "x.gguf"), InputError);
  md.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
  md.set("tokenizer.ggml.pre", GgufValue::string("no-such-pre"));
  EXPECT_THROW(load_gguf_tokenizer(md, "x.gguf"), InputError);
  md.set("tokenizer.ggml.model", GgufValue::string("wordpiece-ish"));
  EXPECT_THROW(load_gguf_tokenizer(md, "x.gguf"), InputError);
}

}  // namespace
}  // namespace optiq

namespace optiq {
namespace {

// Each file once crashed, hung or allocated gigabytes (found by fuzz_tokenizer_json); each must
// now be one InputError that says what is wrong.
TEST(HfTokenizer, HostileTokenizerJsonIsAnInputError) {
  const std::string model = R"("model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"model":{"type":"BPE","vocab":{"a":1e999},"merges":[]}})", "invalid JSON"},
      {"{" + model + R"(,"post_processor":{"type":7}})", "'type' must be a string"},
      {"{" + model + R"(,"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"a"}}],)"
                     R"("special_tokens":{"a":{"ids":[1048576]}}}})",
       "outside the vocabulary"},
      {"{" + model + R"(,"decoder":{"type":"Strip","content":"","start":1000000}})", "non-empty 'content'"},
      {R"({"model":{"type":"BPE","vocab":{"a":16777215},"merges":[]}})", "only 1 tokens are defined"},
      {"{" + model + R"(,"normalizer":)" + std::string(40, '{') , "invalid JSON"},
  };
  for (const auto& [json, expected] : cases) {
    test::ScratchDir dir;
    test::write_text(dir / "tokenizer.json", json);
    try {
      load_hf_tokenizer(dir.path());
      ADD_FAILURE() << "accepted: " << json;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
    }
  }
}

TEST(HfTokenizer, DeeplyNestedSequencesAreRefusedNotRecursedInto) {
  std::string normalizer = R"({"type":"NFC"})";
  for (int i = 0; i < 5000; ++i) normalizer = R"({"type":"Sequence","normalizers":[)" + normalizer + "]}";
  test::ScratchDir dir;
  test::write_text(dir / "tokenizer.json",
                   R"({"normalizer":)" + normalizer + R"(,"model":{"type":"BPE","vocab":{"a":0},"merges":[]}})");
  try {
    load_hf_tokenizer(dir.path());
    ADD_FAILURE() << "accepted 5000 nested Sequences";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("nest too deeply"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace optiq
