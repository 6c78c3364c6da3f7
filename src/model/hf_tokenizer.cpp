// Hugging Face tokenizers: tokenizer.json (model BPE, normalizer, pre_tokenizer, decoder,
// post_processor, added_tokens) and the older vocab.json + merges.txt (+ added_tokens.json)
// form, built the way transformers' converters build the fast tokenizer (Qwen2Tokenizer:
// NFC + Qwen2's split regex + byte-level; GPT2Tokenizer: byte-level with GPT-2's regex).
#include <nlohmann/json.hpp>

#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>

#include "model/tokenizer.h"
#include "util/error.h"
#include "util/json_file.h"

namespace optiq {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Sequences nest in real files one level deep; a bound keeps hostile files from exhausting the
// stack while parsing them.
constexpr int kMaxNesting = 32;

// j[key] without copying it (json::value copies, recursively), or null when absent.
const json& field(const json& j, const char* key) {
  static const json null;
  if (!j.is_object()) return null;
  auto it = j.find(key);
  return it == j.end() ? null : *it;
}

struct Ctx {
  std::string file;
  [[noreturn]] void fail(const std::string& what) const { throw InputError(file, std::nullopt, what); }
  const json& obj(const json& j, const char* what) const {
    if (!j.is_object()) fail(std::string(what) + " must be an object");
    return j;
  }
  std::string str(const json& j, const char* key, const std::string& def = "") const {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_string()) fail(std::string("field '") + key + "' must be a string");
    return j[key].get<std::string>();
  }
  bool flag(const json& j, const char* key, bool def) const {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_boolean()) fail(std::string("field '") + key + "' must be true or false");
    return j[key].get<bool>();
  }
  size_t count(const json& j, const char* key, size_t def) const {
    if (!j.contains(key) || j[key].is_null()) return def;
    if (!j[key].is_number_unsigned()) fail(std::string("field '") + key + "' must be a non-negative integer");
    return j[key].get<size_t>();
  }
};

std::string literal_regex(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) r += '\\';
    r += c;
  }
  return r;
}

// A `pattern` field: {"String": s} (a literal) or {"Regex": r}.
std::string pattern_regex(const Ctx& cx, const json& j, bool* is_literal = nullptr, std::string* literal = nullptr) {
  if (!j.is_object()) cx.fail("'pattern' must be an object with String or Regex");
  if (j.contains("String") && j["String"].is_string()) {
    if (is_literal) *is_literal = true;
    if (literal) *literal = j["String"].get<std::string>();
    return literal_regex(j["String"].get<std::string>());
  }
  if (j.contains("Regex") && j["Regex"].is_string()) {
    if (is_literal) *is_literal = false;
    return j["Regex"].get<std::string>();
  }
  cx.fail("'pattern' must be an object with String or Regex");
}

std::shared_ptr<Regex> compile(const Ctx& cx, const std::string& re) {
  try {
    return std::make_shared<Regex>(re);
  } catch (const std::invalid_argument& e) {
    cx.fail(e.what());
  }
}

void parse_normalizer(const Ctx& cx, const json& j, Tokenizer& tok, int depth = 0) {
  if (j.is_null()) return;
  if (depth > kMaxNesting) cx.fail("normalizer Sequences nest too deeply");
  const std::string type = cx.str(cx.obj(j, "normalizer"), "type");
  if (type == "Sequence") {
    if (!j.contains("normalizers") || !j["normalizers"].is_array()) cx.fail("Sequence normalizer needs 'normalizers'");
    for (const auto& n : j["normalizers"]) parse_normalizer(cx, n, tok, depth + 1);
  } else if (type == "NFC") {
    tok.normalizers.push_back({NormalizerStep::Nfc, "", ""});
  } else if (type == "Prepend") {
    tok.normalizers.push_back({NormalizerStep::Prepend, "", cx.str(j, "prepend")});
  } else if (type == "Replace") {
    bool literal = false;
    std::string text;
    pattern_regex(cx, field(j, "pattern"), &literal, &text);
    if (!literal) cx.fail("Replace normalizer with a Regex pattern is not supported");
    tok.normalizers.push_back({NormalizerStep::Replace, text, cx.str(j, "content")});
  } else {
    cx.fail("normalizer '" + type + "' is not supported (supported: Sequence, NFC, Prepend, Replace)");
  }
}

PreTokenizerStep::Prepend prepend_scheme(const Ctx& cx, const json& j) {
  if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
    const std::string s = j["prepend_scheme"].get<std::string>();
    if (s == "always") return PreTokenizerStep::Always;
    if (s == "first") return PreTokenizerStep::First;
    if (s == "never") return PreTokenizerStep::Never;
    cx.fail("unknown prepend_scheme '" + s + "'");
  }
  return cx.flag(j, "add_prefix_space", true) ? PreTokenizerStep::Always : PreTokenizerStep::Never;
}

void parse_pre_tokenizer(const Ctx& cx, const json& j, Tokenizer& tok, int depth = 0) {
  if (j.is_null()) return;
  if (depth > kMaxNesting) cx.fail("pre_tokenizer Sequences nest too deeply");
  const std::string type = cx.str(cx.obj(j, "pre_tokenizer"), "type");
  PreTokenizerStep p;
  if (type == "Sequence") {
    if (!j.contains("pretokenizers") || !j["pretokenizers"].is_array()) cx.fail("Sequence pre_tokenizer needs 'pretokenizers'");
    for (const auto& n : j["pretokenizers"]) parse_pre_tokenizer(cx, n, tok, depth + 1);
    return;
  } else if (type == "Split") {
    p.kind = PreTokenizerStep::Split;
    p.regex = compile(cx, pattern_regex(cx, field(j, "pattern")));
    const std::string b = cx.str(j, "behavior", "Isolated");
    if (b == "Isolated") p.behavior = SplitBehavior::Isolated;
    else if (b == "Removed") p.behavior = SplitBehavior::Removed;
    else if (b == "MergedWithPrevious") p.behavior = SplitBehavior::MergedWithPrevious;
    else if (b == "MergedWithNext") p.behavior = SplitBehavior::MergedWithNext;
    else if (b == "Contiguous") p.behavior = SplitBehavior::Contiguous;
    else cx.fail("unknown Split behavior '" + b + "'");
    p.invert = cx.flag(j, "invert", false);
  } else if (type == "ByteLevel") {
    p.kind = PreTokenizerStep::ByteLevel;
    p.add_prefix_space = cx.flag(j, "add_prefix_space", true);
    p.use_regex = cx.flag(j, "use_regex", true);
    tok.byte_level = true;
  } else if (type == "Digits") {
    p.kind = PreTokenizerStep::Digits;
    p.individual_digits = cx.flag(j, "individual_digits", false);
  } else if (type == "Metaspace") {
    p.kind = PreTokenizerStep::Metaspace;
    p.replacement = cx.str(j, "replacement", "\xE2\x96\x81");
    p.prepend = prepend_scheme(cx, j);
    p.split = cx.flag(j, "split", true);
    p.regex = compile(cx, literal_regex(p.replacement));
  } else {
    cx.fail("pre_tokenizer '" + type + "' is not supported (supported: Sequence, Split, ByteLevel, Digits, Metaspace)");
  }
  tok.pre_steps.push_back(std::move(p));
}

void parse_decoder(const Ctx& cx, const json& j, Tokenizer& tok, int depth = 0) {
  if (j.is_null()) return;
  if (depth > kMaxNesting) cx.fail("decoder Sequences nest too deeply");
  const std::string type = cx.str(cx.obj(j, "decoder"), "type");
  DecoderStep d;
  if (type == "Sequence") {
    if (!j.contains("decoders") || !j["decoders"].is_array()) cx.fail("Sequence decoder needs 'decoders'");
    for (const auto& n : j["decoders"]) parse_decoder(cx, n, tok, depth + 1);
    return;
  } else if (type == "ByteLevel") {
    d.kind = DecoderStep::ByteLevel;
  } else if (type == "Replace") {
    d.kind = DecoderStep::Replace;
    bool literal = false;
    pattern_regex(cx, field(j, "pattern"), &literal, &d.pattern);
    if (!literal) cx.fail("Replace decoder with a Regex pattern is not supported");
    d.content = cx.str(j, "content");
  } else if (type == "ByteFallback") {
    d.kind = DecoderStep::ByteFallback;
  } else if (type == "Fuse") {
    d.kind = DecoderStep::Fuse;
  } else if (type == "Strip") {
    d.kind = DecoderStep::Strip;
    d.content = cx.str(j, "content", " ");
    if (d.content.empty()) cx.fail("Strip decoder needs a non-empty 'content'");
    d.start = cx.count(j, "start", 0);
    d.stop = cx.count(j, "stop", 0);
  } else if (type == "Metaspace") {
    d.kind = DecoderStep::Metaspace;
    d.pattern = cx.str(j, "replacement", "\xE2\x96\x81");
    d.prepend_first = prepend_scheme(cx, j) != PreTokenizerStep::Never;
  } else {
    cx.fail("decoder '" + type + "' is not supported (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace)");
  }
  tok.decoders.push_back(std::move(d));
}

// Real vocabularies leave few ids unused (config.json padding, reserved ranges); a bound on the
// gaps keeps a tiny hostile file from allocating millions of placeholder tokens.
size_t max_ids_for(size_t defined) { return 2 * defined + 65536; }

// Sets `tokens` from a token -> id map, leaving holes as "[PAD<i>]" (what llama.cpp's converter
// writes for ids no token has).
void fill_vocab(const Ctx& cx, const json& vocab, size_t min_size, Tokenizer& tok) {
  if (!vocab.is_object()) cx.fail("'vocab' must be an object of token -> id");
  size_t n = min_size;
  for (auto& [text, id] : vocab.items()) {
    if (!id.is_number_unsigned() || id.get<uint64_t>() >= (1u << 31)) cx.fail("vocab entry '" + text + "' has a bad id");
    n = std::max<size_t>(n, id.get<size_t>() + 1);
  }
  if (n > (1u << 24)) cx.fail("vocabulary of " + std::to_string(n) + " ids is too large");
  if (n > max_ids_for(vocab.size()))
    cx.fail("vocabulary ids reach " + std::to_string(n - 1) + " but only " + std::to_string(vocab.size()) +
            " tokens are defined");
  tok.tokens.assign(n, TokenInfo{});
  std::vector<bool> set(n, false);
  for (auto& [text, id] : vocab.items()) {
    tok.tokens[id.get<size_t>()].text = text;
    set[id.get<size_t>()] = true;
  }
  for (size_t i = 0; i < n; ++i)
    if (!set[i]) {
      tok.tokens[i].text = "[PAD" + std::to_string(i) + "]";
      tok.tokens[i].type = TokenType::Unused;
    }
}

void add_token(const Ctx& cx, Tokenizer& tok, size_t id, const std::string& content, bool special, bool lstrip,
               bool rstrip) {
  if (id >= (1u << 24) || id >= max_ids_for(tok.tokens.size()))
    cx.fail("added token '" + content + "' has id " + std::to_string(id) + ", far past the vocabulary");
  if (id >= tok.tokens.size()) {
    const size_t old = tok.tokens.size();
    tok.tokens.resize(id + 1);
    for (size_t i = old; i < id; ++i) {
      tok.tokens[i].text = "[PAD" + std::to_string(i) + "]";
      tok.tokens[i].type = TokenType::Unused;
    }
  }
  TokenInfo& t = tok.tokens[id];
  t.text = content;
  t.added = true;
  t.special = special;
  t.lstrip = lstrip;
  t.rstrip = rstrip;
  t.type = special ? TokenType::Control : TokenType::UserDefined;
}

std::string token_text(const json& j) {  // "tok" or {"content": "tok", ...}
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("content") && j["content"].is_string()) return j["content"].get<std::string>();
  return "";
}

}  // namespace

Tokenizer load_hf_tokenizer(const fs::path& dir) {
  Tokenizer tok;
  tok.flavor = TokenizerFlavor::HuggingFace;
  tok.model = TokenizerModel::Bpe;
  json config = json::object();
  if (fs::exists(dir / "tokenizer_config.json")) config = read_json_file(dir / "tokenizer_config.json");
  if (!config.is_object()) throw InputError((dir / "tokenizer_config.json").string(), std::nullopt, "must be a JSON object");
  std::optional<bool> template_bos, template_eos;
  int32_t template_bos_id = -1, template_eos_id = -1;

  if (fs::exists(dir / "tokenizer.json")) {
    const Ctx cx{(dir / "tokenizer.json").string()};
    const json j = read_json_file(dir / "tokenizer.json");
    cx.obj(j, "tokenizer.json");
    if (!j.contains("model")) cx.fail("no 'model'");
    const json& m = cx.obj(j["model"], "'model'");
    const std::string type = cx.str(m, "type", "BPE");
    if (type != "BPE") cx.fail("model type '" + type + "' is not supported (only BPE)");
    if (!cx.str(m, "continuing_subword_prefix").empty() || !cx.str(m, "end_of_word_suffix").empty())
      cx.fail("BPE with continuing_subword_prefix or end_of_word_suffix is not supported");
    if (m.contains("dropout") && !m["dropout"].is_null() && m["dropout"].is_number() && m["dropout"].get<double>() > 0)
      cx.fail("BPE dropout is not supported");
    fill_vocab(cx, field(m, "vocab"), 0, tok);
    if (!m.contains("merges") || !m["merges"].is_array()) cx.fail("BPE model needs 'merges'");
    for (const auto& mg : m["merges"]) {
      if (mg.is_string()) tok.merge_list.push_back(mg.get<std::string>());
      else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string())
        tok.merge_list.push_back(mg[0].get<std::string>() + " " + mg[1].get<std::string>());
      else cx.fail("a merge must be \"a b\" or [\"a\", \"b\"]");
    }
    tok.byte_fallback = cx.flag(m, "byte_fallback", false);
    tok.ignore_merges = cx.flag(m, "ignore_merges", false);
    tok.fuse_unk = cx.flag(m, "fuse_unk", false);
    const std::string unk = cx.str(m, "unk_token");
    if (j.contains("added_tokens")) {
      if (!j["added_tokens"].is_array()) cx.fail("'added_tokens' must be an array");
      for (const auto& a : j["added_tokens"]) {
        cx.obj(a, "an added token");
        if (!a.contains("id") || !a["id"].is_number_unsigned()) cx.fail("added token without an id");
        add_token(cx, tok, a["id"].get<size_t>(), cx.str(a, "content"), cx.flag(a, "special", false),
                  cx.flag(a, "lstrip", false), cx.flag(a, "rstrip", false));
      }
    }
    parse_normalizer(cx, field(j, "normalizer"), tok);
    parse_pre_tokenizer(cx, field(j, "pre_tokenizer"), tok);
    parse_decoder(cx, field(j, "decoder"), tok);
    tok.finalize();
    if (!unk.empty()) tok.unk = tok.find(unk);
    if (tok.byte_fallback)
      for (auto& t : tok.tokens)
        if (!t.added && t.text.size() == 6 && t.text.starts_with("<0x") && t.text.back() == '>') t.type = TokenType::Byte;
    // post_processor: a TemplateProcessing "single" template that starts / ends with a special
    // token means BOS / EOS are added.
    std::function<void(const json&, int)> post = [&](const json& p, int depth) {
      if (!p.is_object()) return;
      if (depth > kMaxNesting) cx.fail("post_processor Sequences nest too deeply");
      const std::string ptype = cx.str(p, "type");
      if (ptype == "Sequence" && field(p, "processors").is_array())
        for (const auto& q : p["processors"]) post(q, depth + 1);
      if (ptype != "TemplateProcessing" || !field(p, "single").is_array()) return;
      const json& single = p["single"];
      auto special_id = [&](const json& item) -> int32_t {
        if (!item.is_object() || !item.contains("SpecialToken")) return -1;
        const std::string name = cx.str(cx.obj(item["SpecialToken"], "a SpecialToken item"), "id");
        const json& ids = field(field(field(p, "special_tokens"), name.c_str()), "ids");
        if (!ids.is_array() || ids.size() != 1) return tok.find(name);
        if (!ids[0].is_number_unsigned() || ids[0].get<uint64_t>() >= tok.tokens.size())
          cx.fail("post_processor special token '" + name + "' has an id outside the vocabulary");
        return ids[0].get<int32_t>();
      };
      template_bos = false, template_eos = false;
      if (!single.empty() && (template_bos_id = special_id(single.front())) >= 0) template_bos = true;
      if (single.size() > 1 && (template_eos_id = special_id(single.back())) >= 0) template_eos = true;
    };
    post(field(j, "post_processor"), 0);
  } else if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) {
    const Ctx cx{(dir / "vocab.json").string()};
    fill_vocab(cx, read_json_file(dir / "vocab.json"), 0, tok);
    std::ifstream in(dir / "merges.txt", std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line.starts_with("#version")) continue;
      tok.merge_list.push_back(line);
    }
    const Ctx config_cx{(dir / "tokenizer_config.json").string()};
    const std::string cls = config_cx.str(config, "tokenizer_class");
    if (cls.starts_with("Qwen2Tokenizer")) {
      tok.normalizers.push_back({NormalizerStep::Nfc, "", ""});
      PreTokenizerStep split;
      split.kind = PreTokenizerStep::Split;
      split.regex = compile(cx, pre_regex::kQwen2);
      tok.pre_steps.push_back(split);
      PreTokenizerStep bl;
      bl.kind = PreTokenizerStep::ByteLevel;
      bl.add_prefix_space = false;
      bl.use_regex = false;
      tok.pre_steps.push_back(bl);
    } else {
      PreTokenizerStep bl;
      bl.kind = PreTokenizerStep::ByteLevel;
      bl.add_prefix_space = config_cx.flag(config, "add_prefix_space", false);
      bl.use_regex = true;
      tok.pre_steps.push_back(bl);
    }
    tok.byte_level = true;
    tok.decoders.push_back(DecoderStep{});  // kind defaults to ByteLevel
    if (fs::exists(dir / "added_tokens.json")) {
      const Ctx acx{(dir / "added_tokens.json").string()};
      const json added = read_json_file(dir / "added_tokens.json");
      if (!added.is_object()) acx.fail("must be an object of token -> id");
      for (auto& [text, id] : added.items()) {
        if (!id.is_number_unsigned()) acx.fail("'" + text + "' has a bad id");
        add_token(acx, tok, id.get<size_t>(), text, false, false, false);
      }
    }
  } else {
    throw InputError(dir.string(), std::nullopt,
                     "no tokenizer.json, and no vocab.json + merges.txt (tokenizer.model alone is not supported)");
  }

  // tokenizer_config.json: added-token flags, special tokens, BOS/EOS policy, chat template.
  const Ctx ccx{(dir / "tokenizer_config.json").string()};
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object())
    for (auto& [id_text, a] : config["added_tokens_decoder"].items()) {
      size_t id = 0;
      try {
        id = std::stoul(id_text);
      } catch (const std::exception&) {
        ccx.fail("added_tokens_decoder key '" + id_text + "' is not an id");
      }
      ccx.obj(a, "an added_tokens_decoder entry");
      if (id < tok.tokens.size() && tok.tokens[id].added && tok.tokens[id].text != ccx.str(a, "content")) continue;
      add_token(ccx, tok, id, ccx.str(a, "content"), ccx.flag(a, "special", false), ccx.flag(a, "lstrip", false),
                ccx.flag(a, "rstrip", false));
    }
  tok.finalize();
  auto special = [&](const char* key, int32_t& id) {
    if (config.contains(key)) {
      const std::string t = token_text(config[key]);
      if (!t.empty()) id = tok.find(t);
    }
  };
  special("bos_token", tok.bos);
  special("eos_token", tok.eos);
  special("pad_token", tok.pad);
  if (tok.unk < 0) special("unk_token", tok.unk);
  if (template_bos_id >= 0 && tok.bos < 0) tok.bos = template_bos_id;
  if (template_eos_id >= 0 && tok.eos < 0) tok.eos = template_eos_id;
  tok.add_bos = config.contains("add_bos_token") && config["add_bos_token"].is_boolean()
                    ? config["add_bos_token"].get<bool>()
                    : template_bos.value_or(false);
  tok.add_eos = config.contains("add_eos_token") && config["add_eos_token"].is_boolean()
                    ? config["add_eos_token"].get<bool>()
                    : template_eos.value_or(false);
  if (config.contains("chat_template")) {
    const json& ct = config["chat_template"];
    if (ct.is_string()) tok.chat_template = ct.get<std::string>();
    else if (ct.is_array())
      for (const auto& t : ct)
        if (field(t, "name") == "default" && field(t, "template").is_string())
          tok.chat_template = t["template"].get<std::string>();
  }
  if (tok.chat_template.empty() && fs::exists(dir / "chat_template.jinja")) {
    std::ifstream in(dir / "chat_template.jinja", std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    tok.chat_template = ss.str();
  }
  return tok;
}

}  // namespace optiq
