// libFuzzer target for the Hugging Face tokenizer.json loader. The input is a tokenizer.json; a
// malformed or unsupported one must end in InputError, anything else (another exception, e.g.
// one from the JSON library, a sanitizer report, a hang past -timeout, memory past
// -rss_limit_mb) is a bug. A tokenizer that loads is then run: a few fixed texts (and the input
// itself) are encoded and decoded, so the pipeline the file configured (normalizers, split
// regexes, BPE, added-token partitioning, decoders) is fuzzed as well as the parsing.
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "model/tokenizer.h"
#include "model/unicode.h"
#include "util/error.h"

namespace optiq::fuzz {
namespace {

std::string g_scratch_dir;

void remove_scratch() {
  std::error_code ec;
  std::filesystem::remove_all(g_scratch_dir, ec);
}

// load_hf_tokenizer reads a folder, so each input is written as tokenizer.json into a folder of
// its own: one per process under $TMPDIR (a tmpfs under fuzz/run.sh), never shared by parallel
// fuzzers, and holding nothing else, so tokenizer_config.json's defaults apply.
const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::string d = std::string(tmp && *tmp ? tmp : "/tmp") + "/optiq-fuzz-tokenizer-XXXXXX";
    require(::mkdtemp(d.data()) != nullptr, "cannot create a scratch directory " + d);
    g_scratch_dir = d;
    std::atexit(remove_scratch);
    return d;
  }();
  return dir;
}

void write_input(const std::string& dir, const uint8_t* data, size_t size) {
  const std::string path = dir + "/tokenizer.json";
  FILE* f = std::fopen(path.c_str(), "wb");
  require(f != nullptr, "cannot write " + path);
  require(std::fwrite(data, 1, size, f) == size && std::fclose(f) == 0, "cannot write " + path);
}

// One of each kind of text the encoder treats differently: ASCII words, digits and runs of
// spaces, CJK (no spaces, often byte fallback), emoji with a ZWJ sequence, a chat-template
// special token between text, and a lone newline.
constexpr std::string_view kTexts[] = {
    "Hello, world! It's 2024:  x+y=42.\n",
    "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C",
    "\xF0\x9F\x91\x8B\xF0\x9F\x8F\xBD \xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7",
    "<|im_start|>user\n  hi <|im_end|>",
    "\n",
};

// The input as text as well: it holds the vocabulary's own strings (so they match) next to
// arbitrary bytes (invalid UTF-8), which the fixed texts never reach. Capped so that a long
// input costs one load, not a long BPE run on top.
constexpr size_t kMaxInputAsText = 256;

void exercise(const Tokenizer& tok, std::string_view text) {
  for (bool add_special : {false, true})
    for (bool parse_special : {false, true}) {
      const std::vector<int32_t> ids = tok.encode(text, add_special, parse_special);
      for (int32_t id : ids) {
        require(id >= 0 && id < tok.n_tokens(),
                "encode returned id " + std::to_string(id) + " outside the vocabulary of " +
                    std::to_string(tok.n_tokens()));
        tok.token_to_piece(id);
      }
      for (bool skip_special : {false, true})
        require(unicode::is_valid_utf8(tok.decode(ids, skip_special)), "decode returned invalid UTF-8");
    }
}

}  // namespace
}  // namespace optiq::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace optiq;
  const std::string& dir = fuzz::scratch_dir();
  fuzz::write_input(dir, data, size);
  std::optional<Tokenizer> tok;
  try {
    tok.emplace(load_hf_tokenizer(dir));
  } catch (const InputError&) {
    return 0;  // the expected outcome for a malformed or unsupported file
  } catch (const std::exception& e) {
    fuzz::require(false, std::string("load: exception other than InputError: ") + e.what());
  }
  // Once loaded, a tokenizer must take any text: no exception of any kind is expected.
  try {
    for (std::string_view text : fuzz::kTexts) fuzz::exercise(*tok, text);
    fuzz::exercise(*tok, std::string_view(reinterpret_cast<const char*>(data),
                                          std::min(size, fuzz::kMaxInputAsText)));
  } catch (const std::exception& e) {
    fuzz::require(false, std::string("encode/decode threw: ") + e.what());
  }
  return 0;
}
