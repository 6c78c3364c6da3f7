#include "model/chat_template.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <sstream>

#include "io/gguf.h"
#include "model/jinja_interpreter.h"
#include "util/error.h"
#include "util/json_file.h"

namespace optiq {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw RuntimeError("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

ojson read_json(const fs::path& p) { return read_json_file<ojson>(p); }

// A chat_template value: a string, or HF's list of {"name": ..., "template": ...}.
void add_templates(ChatTemplate& t, const ojson& v, const std::string& file) {
  if (v.is_string()) {
    t.templates.emplace_back("default", v.get<std::string>());
    return;
  }
  if (!v.is_array()) throw InputError(file, std::nullopt, "chat_template: expected a string or a list");
  for (const auto& item : v) {
    if (!item.is_object() || !item.contains("name") || !item["name"].is_string() ||
        !item.contains("template") || !item["template"].is_string())
      throw InputError(file, std::nullopt, "chat_template: list items need string 'name' and 'template'");
    t.templates.emplace_back(item["name"].get<std::string>(), item["template"].get<std::string>());
  }
}

// A token as tokenizer_config.json spells it: "<s>" or {"content": "<s>", ...} (AddedToken).
std::string token_text(const ojson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  return "";
}

constexpr const char* kTokenAttrs[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                       "pad_token", "cls_token", "mask_token"};

void set_special(ChatTemplate& t, const std::string& key, ojson value) {
  for (auto& [k, v] : t.special_tokens)
    if (k == key) {
      v = std::move(value);
      return;
    }
  t.special_tokens.emplace_back(key, std::move(value));
}

void read_special_tokens(ChatTemplate& t, const ojson& config) {
  if (!config.is_object()) return;
  for (const char* attr : kTokenAttrs)
    if (config.contains(attr)) {
      const std::string text = token_text(config[attr]);
      if (!text.empty()) set_special(t, attr, text);
    }
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array()) {
    ojson list = ojson::array();
    for (const auto& x : config["additional_special_tokens"]) list.push_back(token_text(x));
    if (!list.empty()) set_special(t, "additional_special_tokens", std::move(list));
  }
}

ChatTemplate load_hf(const fs::path& dir) {
  ChatTemplate t;
  const fs::path config_path = dir / "tokenizer_config.json";
  ojson config;
  if (fs::exists(config_path)) config = read_json(config_path);
  read_special_tokens(t, config);
  if (fs::exists(dir / "special_tokens_map.json")) read_special_tokens(t, read_json(dir / "special_tokens_map.json"));

  if (fs::exists(dir / "chat_template.jinja")) {
    t.origin = (dir / "chat_template.jinja").string();
    t.templates.emplace_back("default", read_text(dir / "chat_template.jinja"));
  } else if (fs::exists(dir / "chat_template.json")) {
    t.origin = (dir / "chat_template.json").string();
    const ojson j = read_json(dir / "chat_template.json");
    if (!j.is_object() || !j.contains("chat_template"))
      throw InputError(t.origin, std::nullopt, "no 'chat_template' key");
    add_templates(t, j["chat_template"], t.origin);
  } else if (config.is_object() && config.contains("chat_template")) {
    t.origin = config_path.string();
    add_templates(t, config["chat_template"], t.origin);
  } else {
    throw InputError(dir.string(), std::nullopt,
                     "no chat template (looked for chat_template.jinja, chat_template.json and "
                     "tokenizer_config.json's chat_template)");
  }
  return t;
}

ChatTemplate load_gguf(const fs::path& path) {
  const GgufFile f(path.string());
  const GgufMetadata& md = f.metadata();
  ChatTemplate t;
  t.origin = path.string() + ":tokenizer.chat_template";
  const std::string prefix = "tokenizer.chat_template";
  for (const auto& [key, v] : md.entries()) {
    if (key.rfind(prefix, 0) != 0 || !v.as_string()) continue;
    if (key == prefix) t.templates.insert(t.templates.begin(), {"default", *v.as_string()});
    else if (key[prefix.size()] == '.') t.templates.emplace_back(key.substr(prefix.size() + 1), *v.as_string());
  }
  if (t.templates.empty()) throw InputError(path.string(), std::nullopt, "no tokenizer.chat_template in the metadata");
  const GgufValue* tokens = md.find("tokenizer.ggml.tokens");
  const GgufArray* arr = tokens ? tokens->as_array() : nullptr;
  static constexpr std::pair<const char*, const char*> kIds[] = {
      {"bos_token", "bos"}, {"eos_token", "eos"}, {"unk_token", "unknown"}, {"sep_token", "seperator"},
      {"pad_token", "padding"}, {"cls_token", "cls"}, {"mask_token", "mask"}};
  for (const auto& [attr, gguf_name] : kIds) {
    const auto id = md.get_int(std::string("tokenizer.ggml.") + gguf_name + "_token_id");
    if (!id || !arr || *id < 0 || static_cast<uint64_t>(*id) >= arr->items.size()) continue;
    if (const std::string* text = arr->items[*id].as_string(); text && !text->empty()) set_special(t, attr, *text);
  }
  return t;
}

bool is_gguf(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

// The clock strftime_now reads: OPTIQ_FIXED_DATE when set, else now in local time (what
// Python's datetime.now() gives).
std::tm template_clock() {
  std::tm tm{};
  if (const char* fixed = std::getenv("OPTIQ_FIXED_DATE"); fixed && *fixed) {
    int y, mo, d, h = 0, mi = 0, s = 0;
    char sep = 0;
    const int n = std::sscanf(fixed, "%4d-%2d-%2d%c%2d:%2d:%2d", &y, &mo, &d, &sep, &h, &mi, &s);
    if (!(n == 3 || (n == 7 && (sep == 'T' || sep == ' '))) || mo < 1 || mo > 12 || d < 1 || d > 31 ||
        h > 23 || mi > 59 || s > 59)
      throw InputError("OPTIQ_FIXED_DATE", std::nullopt,
                       std::string("expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS, got '") + fixed + "'");
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    tm.tm_isdst = -1;
    std::time_t t = std::mktime(&tm);  // fills in the weekday and day of the year
    localtime_r(&t, &tm);
    return tm;
  }
  const std::time_t now = std::time(nullptr);
  localtime_r(&now, &tm);
  return tm;
}

jinja::Value strftime_now(jinja::CallArgs& a) {
  if (a.positional.size() != 1 || !a.positional[0].is_string() || !a.keyword.empty())
    throw jinja::Error(0, "strftime_now() takes one format string");
  const std::string& fmt = a.positional[0].str_ref();
  if (fmt.empty()) return jinja::Value("");
  const std::tm tm = template_clock();
  std::vector<char> buf(256 + fmt.size() * 16);
  const size_t n = std::strftime(buf.data(), buf.size(), fmt.c_str(), &tm);
  return jinja::Value(std::string(buf.data(), n));
}

}  // namespace

ChatTemplate load_chat_template(const fs::path& model) {
  if (fs::is_directory(model)) return load_hf(model);
  if (!fs::exists(model)) throw InputError(model.string(), std::nullopt, "no such file or folder");
  if (!is_gguf(model)) throw InputError(model.string(), std::nullopt, "neither a model folder nor a GGUF file");
  return load_gguf(model);
}

ChatTemplate chat_template_from_file(const fs::path& file) {
  if (!fs::is_regular_file(file)) throw InputError(file.string(), std::nullopt, "no such file");
  ChatTemplate t;
  t.origin = file.string();
  t.templates.emplace_back("default", read_text(file));
  return t;
}

const std::string& chat_template_source(const ChatTemplate& tmpl, bool tools) {
  // transformers' choice among named templates.
  auto named = [&](const char* name) -> const std::string* {
    for (const auto& [n, s] : tmpl.templates)
      if (n == name) return &s;
    return nullptr;
  };
  const std::string* source = tools ? named("tool_use") : nullptr;
  if (!source) source = named("default");
  if (!source && tmpl.templates.size() == 1) source = &tmpl.templates[0].second;
  if (!source)
    throw InputError(tmpl.origin, std::nullopt, "several chat templates and none is named 'default'");
  return *source;
}

std::string render_chat(const ChatTemplate& tmpl, const ChatRequest& request) {
  const std::string* source = &chat_template_source(tmpl, !request.tools.is_null());
  using jinja::Value;
  std::vector<std::pair<std::string, Value>> vars = {
      {"messages", Value::from_json(request.messages)},
      {"tools", Value::from_json(request.tools)},
      {"documents", Value::none()},
      {"add_generation_prompt", Value(request.add_generation_prompt)},
      {"raise_exception", Value::callable("raise_exception", [](jinja::CallArgs& a) -> Value {
         throw jinja::Error(0, "the template raised an exception: " + (a.positional.empty() ? std::string() : a.positional[0].str()));
       })},
      {"strftime_now", Value::callable("strftime_now", strftime_now)},
  };
  for (const auto& [k, v] : tmpl.special_tokens) vars.emplace_back(k, Value::from_json(v));
  for (const auto& [k, v] : request.vars) vars.emplace_back(k, Value::from_json(v));
  return jinja::Template(*source, tmpl.origin).render(vars);
}

}  // namespace optiq
