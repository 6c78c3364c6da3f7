#include "constrain/json_constraint.h"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

#include "util/error.h"
#include "util/trim.h"

namespace optiq::constrain {
namespace {

using Json = nlohmann::ordered_json;

// How far a reader got: the text contradicts the schema (Fail), ran out while still fitting it
// (Partial), or holds a whole value here (Ok, pos past it).
enum class R { Fail, Partial, Ok };

const Json& any_value() {
  static const Json empty = Json::object();  // no keywords: every JSON value
  return empty;
}

// A recursive-descent reader of one JSON value against a schema, over text that may stop
// anywhere.
struct Reader {
  std::string_view s;
  size_t pos = 0;
  const Json& root;

  bool at_end() const { return pos >= s.size(); }

  // Skips whitespace; Fail past kMaxWhitespace characters in a row.
  R skip_ws() {
    size_t n = 0;
    while (!at_end() && is_ascii_space(s[pos])) {
      if (++n > JsonConstraint::kMaxWhitespace) return R::Fail;
      ++pos;
    }
    return R::Ok;
  }

  // `word` (a literal or an enum member's serialization) at pos.
  R literal(std::string_view word) {
    const std::string_view rest = s.substr(pos);
    if (rest.size() < word.size()) {
      if (word.substr(0, rest.size()) != rest) return R::Fail;
      pos = s.size();
      return R::Partial;
    }
    if (rest.substr(0, word.size()) != word) return R::Fail;
    pos += word.size();
    return R::Ok;
  }

  // The $ref chain of `schema` followed to a schema without one.
  const Json& resolve(const Json& schema) const {
    const Json* cur = &schema;
    for (int hops = 0; cur->is_object() && cur->contains("$ref"); ++hops) {
      if (hops == 16) throw InputError("schema", std::nullopt, "$ref chain longer than 16 references");
      const Json& ref = (*cur)["$ref"];
      if (!ref.is_string()) throw InputError("schema", std::nullopt, "$ref must be a string");
      const std::string r = ref.get<std::string>();
      if (r == "#") {
        cur = &root;
        continue;
      }
      const Json* found = nullptr;
      for (const char* base : {"#/$defs/", "#/definitions/"}) {
        const std::string b = base;
        if (r.rfind(b, 0) == 0) {
          const std::string section = b.substr(2, b.size() - 3);
          const std::string name = r.substr(b.size());
          if (root.contains(section) && root[section].is_object() && root[section].contains(name))
            found = &root[section][name];
        }
      }
      if (!found) throw InputError("schema", std::nullopt, "$ref '" + r + "' does not resolve inside the schema");
      cur = found;
    }
    return *cur;
  }

  // Schema-level recursion that reads nothing ({"anyOf": [{"$ref": "#"}]}) ends here.
  static constexpr int kMaxNesting = 8 * JsonConstraint::kMaxDepth;
  int nesting = 0;

  R value(const Json& schema_in, int depth) {
    if (++nesting > kMaxNesting) return R::Fail;
    const R r = value_unguarded(schema_in, depth);
    --nesting;
    return r;
  }

  R value_unguarded(const Json& schema_in, int depth) {
    const Json& schema = resolve(schema_in);
    if (schema.is_boolean()) {
      if (!schema.get<bool>()) return R::Fail;
      return value(any_value(), depth);
    }
    if (skip_ws() == R::Fail) return R::Fail;
    if (at_end()) return R::Partial;
    for (const char* key : {"anyOf", "oneOf"})
      if (schema.contains(key) && schema[key].is_array()) return alternatives(schema[key], depth);
    if (schema.contains("allOf") && schema["allOf"].is_array() && schema["allOf"].size() == 1)
      return value(schema["allOf"][0], depth);
    if (schema.contains("const")) return members(Json::array({schema["const"]}));
    if (schema.contains("enum") && schema["enum"].is_array()) return members(schema["enum"]);

    std::set<std::string> types;
    if (schema.contains("type")) {
      const Json& t = schema["type"];
      if (t.is_string()) types.insert(t.get<std::string>());
      else if (t.is_array())
        for (const Json& x : t)
          if (x.is_string()) types.insert(x.get<std::string>());
    }
    if (!types.empty() && schema.value("nullable", false)) types.insert("null");
    const auto allows = [&](const char* t) { return types.empty() || types.count(t) > 0; };
    const char c = s[pos];
    if (c == '{' && allows("object")) return object(schema, depth);
    if (c == '[' && allows("array")) return array(schema, depth);
    if (c == '"' && allows("string")) return string(&schema, nullptr);
    if ((c == '-' || std::isdigit(static_cast<unsigned char>(c))) && (allows("number") || allows("integer")))
      return number(!allows("number"));
    if ((c == 't' || c == 'f') && allows("boolean")) return literal(c == 't' ? "true" : "false");
    if (c == 'n' && allows("null")) return literal("null");
    return R::Fail;
  }

  // The first alternative that reads a whole value wins; else Partial if any still fits.
  R alternatives(const Json& alts, int depth) {
    bool partial = false;
    for (const Json& alt : alts) {
      Reader r{s, pos, root};
      r.nesting = nesting;
      const R got = r.value(alt, depth);
      if (got == R::Ok) {
        pos = r.pos;
        return R::Ok;
      }
      partial = partial || got == R::Partial;
    }
    if (partial) pos = s.size();
    return partial ? R::Partial : R::Fail;
  }

  // One of the listed values, written as JSON writes them compactly; the longest whole match.
  R members(const Json& list) {
    size_t best = 0;
    bool partial = false;
    for (const Json& v : list) {
      Reader r{s, pos, root};
      const R got = r.literal(v.dump());
      if (got == R::Ok) best = std::max(best, r.pos);
      partial = partial || got == R::Partial;
    }
    if (best) {
      pos = best;
      return R::Ok;
    }
    if (partial) pos = s.size();
    return partial ? R::Partial : R::Fail;
  }

  // A string at pos ('"'). `schema`: its minLength/maxLength (in code points), or null.
  // `decoded`: receives the characters read (escapes resolved for the simple ones), or null.
  // `escapes`: backslash escapes allowed (not in the keys of a closed object, whose names are
  // matched as written: a \u escape there could lead nowhere).
  R string(const Json* schema, std::string* decoded, bool escapes = true) {
    const auto limit = [&](const char* key) -> std::optional<uint64_t> {
      if (!schema || !schema->contains(key) || !(*schema)[key].is_number_unsigned()) return std::nullopt;
      return (*schema)[key].get<uint64_t>();
    };
    const auto min_len = limit("minLength"), max_len = limit("maxLength");
    ++pos;  // the opening quote
    uint64_t length = 0;  // code points so far
    while (true) {
      if (at_end()) return R::Partial;
      const auto c = static_cast<unsigned char>(s[pos]);
      if (c == '"') {
        ++pos;
        return min_len && length < *min_len ? R::Fail : R::Ok;
      }
      if (c < 0x20) return R::Fail;
      if ((c & 0xC0) != 0x80) ++length;  // not a UTF-8 continuation byte
      if (max_len && length > *max_len) return R::Fail;
      if (c != '\\') {
        if (decoded) decoded->push_back(static_cast<char>(c));
        ++pos;
        continue;
      }
      if (!escapes) return R::Fail;
      if (++pos >= s.size()) return R::Partial;
      const char e = s[pos++];
      static const std::string_view kSimple = "\"\\/bfnrt", kMeaning = "\"\\/\b\f\n\r\t";
      if (const size_t i = kSimple.find(e); i != std::string_view::npos) {
        if (decoded) decoded->push_back(kMeaning[i]);
      } else if (e == 'u') {
        for (int k = 0; k < 4; ++k, ++pos) {
          if (at_end()) return R::Partial;
          if (!std::isxdigit(static_cast<unsigned char>(s[pos]))) return R::Fail;
        }
        if (decoded) decoded->append(s.substr(pos - 6, 6));  // kept escaped: keys rarely use them
      } else {
        return R::Fail;
      }
    }
  }

  // A number at pos; `integer`: no fraction or exponent. Running out inside a number that could
  // end there is Ok (the caller then sees the end of the text).
  R number(bool integer) {
    const size_t start = pos;
    constexpr size_t kMaxChars = 24;  // a model cannot write digits forever
    const auto digits = [&] {
      size_t n = 0;
      while (!at_end() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos, ++n;
      return n;
    };
    if (s[pos] == '-') ++pos;
    if (at_end()) return R::Partial;
    if (s[pos] == '0') {
      ++pos;
    } else if (digits() == 0) {
      return R::Fail;
    }
    bool complete = true;  // the text read so far is a whole number
    if (!integer && !at_end() && s[pos] == '.') {
      ++pos;
      complete = digits() > 0;
      if (!complete && !at_end()) return R::Fail;
    }
    if (!integer && complete && !at_end() && (s[pos] == 'e' || s[pos] == 'E')) {
      ++pos;
      if (!at_end() && (s[pos] == '+' || s[pos] == '-')) ++pos;
      complete = digits() > 0;
      if (!complete && !at_end()) return R::Fail;
    }
    if (pos - start > kMaxChars) return R::Fail;
    if (!complete) return R::Partial;
    return R::Ok;
  }

  R object(const Json& schema, int depth) {
    if (depth >= JsonConstraint::kMaxDepth) return R::Fail;
    ++pos;  // '{'
    const Json* props = schema.contains("properties") && schema["properties"].is_object() ? &schema["properties"] : nullptr;
    const Json* additional = schema.contains("additionalProperties") ? &schema["additionalProperties"] : nullptr;
    const bool open = additional ? (additional->is_object() || (additional->is_boolean() && additional->get<bool>()))
                                 : (props == nullptr || props->empty());
    std::set<std::string> required, seen;
    if (schema.contains("required") && schema["required"].is_array())
      for (const Json& r : schema["required"])
        if (r.is_string()) required.insert(r.get<std::string>());
    const auto close = [&] {
      ++pos;
      return std::includes(seen.begin(), seen.end(), required.begin(), required.end()) ? R::Ok : R::Fail;
    };
    const auto more_keys_possible = [&] {
      if (open) return true;
      for (const auto& [name, _] : props->items())
        if (!seen.count(name)) return true;
      return false;
    };
    if (skip_ws() == R::Fail) return R::Fail;
    if (at_end()) return R::Partial;
    if (s[pos] == '}') return close();
    while (true) {
      if (s[pos] != '"') return R::Fail;
      std::string key;
      const R k = string(nullptr, &key, /*escapes=*/open);
      if (k == R::Fail) return R::Fail;
      if (k == R::Partial) {
        if (open) return R::Partial;
        for (const auto& [name, _] : props->items())
          if (!seen.count(name) && name.rfind(key, 0) == 0) return R::Partial;
        return R::Fail;
      }
      if (seen.count(key) || (!open && !props->contains(key))) return R::Fail;
      seen.insert(key);
      if (skip_ws() == R::Fail) return R::Fail;
      if (at_end()) return R::Partial;
      if (s[pos++] != ':') return R::Fail;
      const Json& sub = props && props->contains(key) ? (*props)[key]
                        : additional && additional->is_object() ? *additional
                                                                : any_value();
      if (const R v = value(sub, depth + 1); v != R::Ok) return v;
      if (skip_ws() == R::Fail) return R::Fail;
      if (at_end()) return R::Partial;
      if (s[pos] == '}') return close();
      if (s[pos] != ',' || !more_keys_possible()) return R::Fail;
      ++pos;
      if (skip_ws() == R::Fail) return R::Fail;
      if (at_end()) return R::Partial;
    }
  }

  R array(const Json& schema, int depth) {
    if (depth >= JsonConstraint::kMaxDepth) return R::Fail;
    ++pos;  // '['
    const Json& items = schema.contains("items") ? schema["items"] : any_value();
    const Json* prefix_items = schema.contains("prefixItems") && schema["prefixItems"].is_array() ? &schema["prefixItems"] : nullptr;
    const uint64_t min_items = schema.contains("minItems") && schema["minItems"].is_number_unsigned() ? schema["minItems"].get<uint64_t>() : 0;
    const std::optional<uint64_t> max_items =
        schema.contains("maxItems") && schema["maxItems"].is_number_unsigned() ? std::optional(schema["maxItems"].get<uint64_t>()) : std::nullopt;
    if (skip_ws() == R::Fail) return R::Fail;
    if (at_end()) return R::Partial;
    if (s[pos] == ']') {
      ++pos;
      return min_items == 0 ? R::Ok : R::Fail;
    }
    for (uint64_t count = 0;; ++count) {
      if (max_items && count >= *max_items) return R::Fail;
      const Json& element = prefix_items && count < prefix_items->size() ? (*prefix_items)[count] : items;
      if (const R v = value(element, depth + 1); v != R::Ok) return v;
      if (skip_ws() == R::Fail) return R::Fail;
      if (at_end()) return R::Partial;
      if (s[pos] == ']') {
        ++pos;
        return count + 1 >= min_items ? R::Ok : R::Fail;
      }
      if (s[pos++] != ',') return R::Fail;
    }
  }
};

// Every $ref inside `node` resolves (Reader::resolve throws otherwise), so that a bad one is an
// error when the request arrives, not in the middle of its generation.
void check_refs(const Reader& reader, const Json& node) {
  if (node.is_object()) {
    if (node.contains("$ref")) reader.resolve(node);
    for (const auto& [_, child] : node.items()) check_refs(reader, child);
  } else if (node.is_array()) {
    for (const Json& child : node) check_refs(reader, child);
  }
}

}  // namespace

JsonConstraint::JsonConstraint(nlohmann::ordered_json schema, std::string prefix, std::string suffix)
    : schema_(std::move(schema)), prefix_(std::move(prefix)), suffix_(std::move(suffix)) {
  if (!schema_.is_object()) throw InputError("schema", std::nullopt, "a JSON Schema must be an object");
  check_refs(Reader{"", 0, schema_}, schema_);
}

JsonConstraint::State JsonConstraint::check(std::string_view text) const {
  if (text.size() < prefix_.size()) return std::string_view(prefix_).substr(0, text.size()) == text ? State::Partial : State::Invalid;
  if (text.substr(0, prefix_.size()) != prefix_) return State::Invalid;
  const std::string_view rest = text.substr(prefix_.size());
  Reader r{rest, 0, schema_};
  const R got = r.value(schema_, 0);
  if (got == R::Fail) return State::Invalid;
  if (got == R::Partial) return State::Partial;
  const std::string_view tail = rest.substr(r.pos);
  if (tail.size() - trim_left(tail).size() > kMaxWhitespace) return State::Invalid;
  if (suffix_.empty()) return trim_left(tail).empty() ? State::Complete : State::Invalid;
  const std::string_view written = trim_left(tail), needed = trim_left(suffix_);
  if (written == needed) return State::Complete;
  return needed.substr(0, std::min(written.size(), needed.size())) == written ? State::Partial : State::Invalid;
}

bool JsonConstraint::finished(std::string_view text) const {
  if (check(text) != State::Complete) return false;
  if (!suffix_.empty()) return true;
  const std::string_view body = text.substr(0, text.find_last_not_of(" \t\n\r") + 1);
  return !body.empty() && !std::isdigit(static_cast<unsigned char>(body.back()));
}

}  // namespace optiq::constrain
