// HF tokenizer -> GGUF tokenizer metadata, following llama.cpp's converter (conversion/base.py
// get_vocab_base / _set_vocab_gpt2 / _set_vocab_llama_hf and gguf-py's SpecialVocab).
#include <nlohmann/json.hpp>

#include <fstream>

#include "model/tokenizer.h"
#include "util/error.h"
#include "util/json_file.h"

namespace optiq {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json read_json_or_empty(const fs::path& p) {
  if (!fs::exists(p)) return json::object();
  json j = read_json_file(p);
  return j.is_object() ? j : json::object();
}

bool looks_special(const std::string& t) {  // base.py does_token_look_special
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (t.starts_with("<|") && t.ends_with("|>")) return true;
  if (t.starts_with("<\xEF\xBD\x9C") && t.ends_with("\xEF\xBD\x9C>")) return true;
  if (t.starts_with("<unused") && t.ends_with(">")) return true;
  return false;
}

// The llama.cpp pre-tokenizer name for a byte-level tokenizer. llama.cpp's converter hashes
// the tokenization of a fixed text; optiq recognises the pre-tokenizer pipelines instead:
// Split(Llama 3 regex) -> llama-bpe, Split(Qwen2 regex) -> qwen2, Digits(individual) +
// ByteLevel(regex) -> smollm, ByteLevel(regex) alone -> gpt-2.
std::string pre_name(const Tokenizer& tok, const std::string& where) {
  const auto& s = tok.pre_steps;
  auto split_is = [&](size_t i, const char* re) {
    return s.size() > i && s[i].kind == PreTokenizerStep::Split && s[i].regex->pattern() == re;
  };
  auto bytelevel = [&](size_t i, bool use_regex) {
    return s.size() > i && s[i].kind == PreTokenizerStep::ByteLevel && s[i].use_regex == use_regex &&
           !s[i].add_prefix_space;
  };
  if (s.size() == 2 && split_is(0, pre_regex::kLlama3) && bytelevel(1, false)) return "llama-bpe";
  if (s.size() == 2 && split_is(0, pre_regex::kQwen2) && bytelevel(1, false)) return "qwen2";
  if (s.size() == 2 && s[0].kind == PreTokenizerStep::Digits && s[0].individual_digits && bytelevel(1, true))
    return "smollm";
  if (s.size() == 1 && bytelevel(0, true)) return "gpt-2";
  throw InputError(where, std::nullopt,
                   "this tokenizer's pre-tokenizer is not one llama.cpp knows by name (recognised: "
                   "Llama 3 / Qwen2 split regex + ByteLevel, Digits + ByteLevel, ByteLevel)");
}

}  // namespace

bool hf_tokenizer_to_gguf(const fs::path& dir, int64_t vocab_size, GgufMetadata& out) {
  const bool has_json = fs::exists(dir / "tokenizer.json");
  if (!has_json && !(fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt"))) return false;
  const Tokenizer tok = load_hf_tokenizer(dir);
  const std::string where = (dir / (has_json ? "tokenizer.json" : "vocab.json")).string();
  if (vocab_size < tok.n_tokens())
    throw InputError((dir / "config.json").string(), std::nullopt,
                     "vocab_size " + std::to_string(vocab_size) + " is smaller than the tokenizer's " +
                         std::to_string(tok.n_tokens()) + " tokens");
  const bool spm_style = tok.byte_fallback && !tok.byte_level;

  std::vector<GgufValue> texts, types, scores;
  // Scores for the SentencePiece-style form: llama.cpp merges the highest-scoring pair
  // first, so a token's score is minus the rank of the merge that makes it.
  std::vector<float> merge_score(tok.n_tokens(), -1e9f);
  if (spm_style)
    for (size_t rank = 0; rank < tok.merge_list.size(); ++rank) {
      const std::string& m = tok.merge_list[rank];
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;
      const int32_t id = tok.find(m.substr(0, sp) + m.substr(sp + 1));
      if (id >= 0 && merge_score[id] == -1e9f) merge_score[id] = -static_cast<float>(rank);
    }
  for (int64_t i = 0; i < vocab_size; ++i) {
    std::string text = "[PAD" + std::to_string(i) + "]";
    TokenType type = TokenType::Unused;
    if (i < tok.n_tokens() && tok.tokens[i].type != TokenType::Unused) {
      const TokenInfo& t = tok.tokens[i];
      text = t.text;
      if (t.added) {
        if (t.special || looks_special(t.text)) {
          type = TokenType::Control;
        } else {
          type = TokenType::UserDefined;
          size_t p;
          while ((p = text.find("\xE2\x96\x81")) != std::string::npos) text.replace(p, 3, " ");
        }
      } else {
        type = t.type == TokenType::Byte ? TokenType::Byte : TokenType::Normal;
      }
    }
    texts.push_back(GgufValue::string(text));
    types.push_back(GgufValue::of<int32_t>(static_cast<int32_t>(type)));
    if (spm_style) scores.push_back(GgufValue::of<float>(i < tok.n_tokens() ? merge_score[i] : -1000.0f));
  }

  if (spm_style) {
    out.set("tokenizer.ggml.model", GgufValue::string("llama"));
    out.set("tokenizer.ggml.pre", GgufValue::string("default"));
  } else if (tok.byte_level) {
    out.set("tokenizer.ggml.model", GgufValue::string("gpt2"));
    out.set("tokenizer.ggml.pre", GgufValue::string(pre_name(tok, where)));
  } else {
    throw InputError(where, std::nullopt, "neither byte-level nor byte-fallback BPE: no llama.cpp tokenizer model fits");
  }
  out.set("tokenizer.ggml.tokens", GgufValue::array(GgufValueType::STRING, std::move(texts)));
  if (spm_style) out.set("tokenizer.ggml.scores", GgufValue::array(GgufValueType::F32, std::move(scores)));
  out.set("tokenizer.ggml.token_type", GgufValue::array(GgufValueType::I32, std::move(types)));
  if (!spm_style) {
    std::vector<GgufValue> merges;
    merges.reserve(tok.merge_list.size());
    for (const auto& m : tok.merge_list) merges.push_back(GgufValue::string(m));
    out.set("tokenizer.ggml.merges", GgufValue::array(GgufValueType::STRING, std::move(merges)));
  }
  if (spm_style)
    for (const auto& p : tok.pre_steps)
      if (p.kind == PreTokenizerStep::Metaspace && p.prepend == PreTokenizerStep::Never)
        out.set("tokenizer.ggml.add_space_prefix", GgufValue::of<bool>(false));

  // SpecialVocab: {typ}_token in tokenizer_config.json, resolved among tokenizer.json's added
  // tokens (first match), else config.json's {typ}_token_id.
  const json tc = read_json_or_empty(dir / "tokenizer_config.json");
  const json cfg = read_json_or_empty(dir / "config.json");
  const json tj = has_json ? read_json_or_empty(dir / "tokenizer.json") : json::object();
  const std::pair<const char*, const char*> kinds[] = {
      {"bos", "bos_token_id"}, {"eos", "eos_token_id"}, {"unk", "unknown_token_id"},
      {"sep", "seperator_token_id"}, {"pad", "padding_token_id"}, {"mask", "mask_token_id"}};
  for (const auto& [typ, key] : kinds) {
    std::optional<int64_t> id;
    const std::string k = std::string(typ) + "_token";
    if (tc.contains(k)) {
      std::string content;
      if (tc[k].is_string()) content = tc[k].get<std::string>();
      else if (tc[k].is_object() && tc[k].contains("content") && tc[k]["content"].is_string())
        content = tc[k]["content"].get<std::string>();
      if (!content.empty() && tj.contains("added_tokens") && tj["added_tokens"].is_array())
        for (const auto& a : tj["added_tokens"])
          if (a.is_object() && a.value("content", "") == content && a.contains("id") && a["id"].is_number_integer()) {
            id = a["id"].get<int64_t>();
            break;
          }
    }
    const std::string ck = std::string(typ) + "_token_id";
    if (!id && cfg.contains(ck) && cfg[ck].is_number_integer()) id = cfg[ck].get<int64_t>();
    if (id && *id >= 0 && *id < vocab_size) out.set(std::string("tokenizer.ggml.") + key, GgufValue::of<uint32_t>(static_cast<uint32_t>(*id)));
  }
  // add_bos/add_eos: tokenizer_config.json, else what the post-processor template does.
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) out.set("tokenizer.ggml.add_bos_token", GgufValue::of<bool>(tc["add_bos_token"].get<bool>()));
  else if (tok.add_bos) out.set("tokenizer.ggml.add_bos_token", GgufValue::of<bool>(true));
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) out.set("tokenizer.ggml.add_eos_token", GgufValue::of<bool>(tc["add_eos_token"].get<bool>()));
  else if (tok.add_eos) out.set("tokenizer.ggml.add_eos_token", GgufValue::of<bool>(true));
  if (!tok.chat_template.empty()) out.set("tokenizer.chat_template", GgufValue::string(tok.chat_template));
  return true;
}

}  // namespace optiq
