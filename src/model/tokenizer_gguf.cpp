// The tokenizer in a GGUF's metadata (tokenizer.ggml.*), loaded with llama.cpp's defaults and
// rules (llama-vocab.cpp, llama_vocab::impl::load) so that optiq tokenizes exactly as
// llama.cpp does.
#include <filesystem>

#include "model/tokenizer.h"
#include "util/error.h"

namespace optiq {
namespace {

const GgufArray* array_key(const GgufMetadata& md, const std::string& key, GgufValueType elem,
                           const std::string& label, bool required) {
  const GgufValue* v = md.find(key);
  if (!v) {
    if (required) throw InputError(label, std::nullopt, "metadata has no " + key);
    return nullptr;
  }
  const GgufArray* a = v->as_array();
  if (!a || (a->elem_type != elem && !(elem == GgufValueType::F32 && a->elem_type == GgufValueType::I32)))
    throw InputError(label, std::nullopt, key + " must be an array of " + gguf_value_type_name(elem));
  return a;
}

// Token texts llama.cpp promotes to control tokens whatever their stored type (end-of-turn,
// end-of-generation and fill-in-the-middle markers).
bool llama_forced_control(const std::string& t) {
  static const char* const kTexts[] = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
      "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|eom_id|>",
      "<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>",
      "<|code_prefix|>", "<|prefix|>", "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>",
      "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>", "<|fim_middle|>",
      "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>",
      "<|middle|>", "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", "<|fim_repo|>",
      "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>", "<|return|>",
      "<|call|>", "<|flush|>", "<|calls|>", "</s>", "[EOS]", "<eos>", "<turn|>",
      "<|tool_response>", "[e~["};
  for (const char* k : kTexts)
    if (t == k) return true;
  return false;
}

}  // namespace

Tokenizer load_gguf_tokenizer(const GgufMetadata& md, const std::string& label) {
  Tokenizer tok;
  tok.flavor = TokenizerFlavor::LlamaCpp;
  const auto model = md.get_string("tokenizer.ggml.model");
  if (!model) throw InputError(label, std::nullopt, "metadata has no tokenizer.ggml.model (no vocabulary)");
  if (*model == "llama") {
    tok.model = TokenizerModel::Spm;
    tok.bos = 1, tok.eos = 2, tok.unk = 0;
    tok.add_space_prefix = true;
    tok.add_bos = true;
    tok.clean_spaces = false;
  } else if (*model == "gpt2") {
    tok.model = TokenizerModel::Bpe;
    tok.byte_level = true;
    tok.bos = 11, tok.eos = 11;
    tok.clean_spaces = true;
    tok.pre_name = md.get_string("tokenizer.ggml.pre").value_or("default");
    LlamaPreTokenizer pre;
    if (!llama_pre_tokenizer(tok.pre_name, pre))
      throw InputError(label, std::nullopt,
                       "tokenizer.ggml.pre '" + tok.pre_name + "' is not supported; known: " + llama_pre_tokenizer_names());
    for (const auto& r : pre.regexes) tok.llama_regexes.push_back(std::make_shared<Regex>(r));
    tok.ignore_merges = pre.ignore_merges;
    tok.clean_spaces = pre.clean_spaces;
    tok.add_bos = pre.add_bos;
    const GgufArray* merges = array_key(md, "tokenizer.ggml.merges", GgufValueType::STRING, label, true);
    tok.merge_list.reserve(merges->items.size());
    for (const auto& m : merges->items) tok.merge_list.push_back(*m.as_string());
  } else {
    throw InputError(label, std::nullopt,
                     "tokenizer.ggml.model '" + *model + "' is not supported (supported: llama, gpt2)");
  }
  if (auto v = md.find("tokenizer.ggml.add_space_prefix"); v && v->as_bool()) tok.add_space_prefix = *v->as_bool();

  const GgufArray* texts = array_key(md, "tokenizer.ggml.tokens", GgufValueType::STRING, label, true);
  const GgufArray* scores = array_key(md, "tokenizer.ggml.scores", GgufValueType::F32, label, false);
  const GgufArray* types = array_key(md, "tokenizer.ggml.token_type", GgufValueType::I32, label, false);
  const size_t n = texts->items.size();
  if (scores && scores->items.size() < n)
    throw InputError(label, std::nullopt, "tokenizer.ggml.scores has fewer entries than tokenizer.ggml.tokens");
  if (types && types->items.size() < n)
    throw InputError(label, std::nullopt, "tokenizer.ggml.token_type has fewer entries than tokenizer.ggml.tokens");
  tok.tokens.resize(n);
  for (size_t i = 0; i < n; ++i) {
    TokenInfo& t = tok.tokens[i];
    t.text = *texts->items[i].as_string();
    if (t.text.empty()) t.text = "[EMPTY_" + std::to_string(i) + "]";
    if (scores) t.score = static_cast<float>(scores->items[i].as_double().value_or(0.0));
    if (types) {
      const int64_t ty = types->items[i].as_int().value_or(1);
      t.type = ty >= 1 && ty <= 6 ? static_cast<TokenType>(ty) : TokenType::Undefined;
    }
    if (llama_forced_control(t.text) && t.type != TokenType::Control) t.type = TokenType::Control;
    t.special = t.type == TokenType::Control || t.type == TokenType::Unknown;
  }

  auto special_id = [&](const char* key, int32_t& id) {
    if (id >= static_cast<int32_t>(n)) id = -1;
    if (auto v = md.get_int(key); v && *v >= 0 && *v < static_cast<int64_t>(n)) id = static_cast<int32_t>(*v);
  };
  special_id("tokenizer.ggml.bos_token_id", tok.bos);
  special_id("tokenizer.ggml.eos_token_id", tok.eos);
  special_id("tokenizer.ggml.unknown_token_id", tok.unk);
  special_id("tokenizer.ggml.padding_token_id", tok.pad);
  special_id("tokenizer.ggml.eot_token_id", tok.eot);
  if (auto v = md.find("tokenizer.ggml.add_bos_token"); v && v->as_bool()) tok.add_bos = *v->as_bool();
  if (auto v = md.find("tokenizer.ggml.add_eos_token"); v && v->as_bool()) tok.add_eos = *v->as_bool();
  tok.chat_template = md.get_string("tokenizer.chat_template").value_or("");
  tok.finalize();
  return tok;
}

Tokenizer load_tokenizer(const std::filesystem::path& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return load_hf_tokenizer(path);
  if (!std::filesystem::exists(path, ec)) throw InputError(path.string(), std::nullopt, "no such file or folder");
  GgufFile file(path.string());
  return load_gguf_tokenizer(file.metadata(), path.string());
}

}  // namespace optiq
