// Reading the calls a model emits: JSON in <tool_call> tags or bare, or Python call syntax.
#include <cctype>
#include <stdexcept>

#include "eval/bfcl.h"

namespace optiq::eval::bfcl {
namespace {

// A recursive-descent reader of Python literals and keyword-argument calls.
class PyReader {
 public:
  explicit PyReader(const std::string& s) : s_(s) {}

  bool at_end() {
    skip_space();
    return i_ >= s_.size();
  }
  bool eat(char c) {
    skip_space();
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) fail(std::string("expected '") + c + "'");
  }
  char peek() {
    skip_space();
    return i_ < s_.size() ? s_[i_] : '\0';
  }

  // A dotted identifier: name(.name)*.
  std::string dotted_name() {
    std::string out = identifier();
    while (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      out += '.';
      out += identifier();
    }
    return out;
  }

  std::string identifier() {
    skip_space();
    const size_t start = i_;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_')) ++i_;
    if (start == i_ || std::isdigit(static_cast<unsigned char>(s_[start]))) fail("expected a name");
    return s_.substr(start, i_ - start);
  }

  ojson value() {
    const char c = peek();
    if (c == '[' || c == '(') {
      ++i_;
      const char close = c == '[' ? ']' : ')';
      ojson arr = ojson::array();
      while (!eat(close)) {
        arr.push_back(value());
        if (!eat(',')) {
          expect(close);
          break;
        }
      }
      return arr;
    }
    if (c == '{') {
      ++i_;
      ojson obj = ojson::object();
      while (!eat('}')) {
        const ojson key = value();
        if (!key.is_string()) fail("a dict key that is not a string");
        expect(':');
        obj[key.get<std::string>()] = value();
        if (!eat(',')) {
          expect('}');
          break;
        }
      }
      return obj;
    }
    if (c == '\'' || c == '"') return string_literal();
    if (c == '-' || c == '+' || c == '.' || std::isdigit(static_cast<unsigned char>(c))) return number();
    const std::string word = identifier();
    if (word == "True") return true;
    if (word == "False") return false;
    if (word == "None") return nullptr;
    fail("unknown name '" + word + "' (only literals are accepted as values)");
    return {};
  }

  [[noreturn]] void fail(const std::string& what) {
    throw std::invalid_argument("Python syntax, at character " + std::to_string(i_) + ": " + what);
  }

 private:
  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }

  ojson string_literal() {
    const char q = s_[i_++];
    std::string out;
    while (i_ < s_.size() && s_[i_] != q) {
      char c = s_[i_++];
      if (c == '\\' && i_ < s_.size()) {
        const char e = s_[i_++];
        c = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e;
      }
      out += c;
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }

  ojson number() {
    const size_t start = i_;
    if (s_[i_] == '-' || s_[i_] == '+') ++i_;
    bool is_float = false;
    while (i_ < s_.size()) {
      const char c = s_[i_];
      if (std::isdigit(static_cast<unsigned char>(c)) || c == '_') {
        ++i_;
      } else if (c == '.' || c == 'e' || c == 'E') {
        is_float = true;
        ++i_;
        if ((c == 'e' || c == 'E') && i_ < s_.size() && (s_[i_] == '-' || s_[i_] == '+')) ++i_;
      } else {
        break;
      }
    }
    std::string text;
    for (size_t k = start; k < i_; ++k)
      if (s_[k] != '_') text += s_[k];
    try {
      size_t used = 0;
      if (is_float) {
        const double d = std::stod(text, &used);
        if (used == text.size()) return d;
      } else {
        const long long v = std::stoll(text, &used);
        if (used == text.size()) return v;
      }
    } catch (const std::exception&) {
    }
    fail("bad number '" + text + "'");
  }

  const std::string& s_;
  size_t i_ = 0;
};

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
  while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
  return s.substr(a, b - a);
}

// Removes a Markdown code fence around the whole reply (```json ... ```).
std::string strip_fence(std::string s) {
  s = trim(s);
  if (!s.starts_with("```")) return s;
  const size_t eol = s.find('\n');
  s = eol == std::string::npos ? "" : s.substr(eol + 1);
  if (const size_t end = s.rfind("```"); end != std::string::npos) s = s.substr(0, end);
  return trim(s);
}

// {"name": ..., "arguments"|"parameters": {...} or a JSON string of it}.
bool json_call(const ojson& j, Call& out) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return false;
  ojson args = j.contains("arguments") ? j["arguments"] : j.contains("parameters") ? j["parameters"] : ojson::object();
  if (args.is_string()) {
    args = ojson::parse(args.get<std::string>(), nullptr, false);
    if (args.is_discarded()) return false;
  }
  if (!args.is_object()) return false;
  out = {j["name"].get<std::string>(), args};
  return true;
}

bool json_calls(const std::string& text, std::vector<Call>& out) {
  const ojson j = ojson::parse(text, nullptr, false);
  if (j.is_discarded()) return false;
  std::vector<Call> calls;
  if (j.is_array()) {
    for (const ojson& item : j) {
      Call c;
      if (!json_call(item, c)) return false;
      calls.push_back(std::move(c));
    }
  } else {
    Call c;
    if (!json_call(j, c)) return false;
    calls.push_back(std::move(c));
  }
  out = std::move(calls);
  return !out.empty();
}

std::vector<Call> python_calls(const std::string& text) {
  PyReader r(text);
  const bool bracketed = r.eat('[');
  std::vector<Call> calls;
  do {
    if (bracketed && r.peek() == ']') break;
    Call c;
    c.name = r.dotted_name();
    c.arguments = ojson::object();
    r.expect('(');
    while (!r.eat(')')) {
      const std::string key = r.identifier();
      if (!r.eat('=')) r.fail("positional argument; BFCL calls name every parameter");
      c.arguments[key] = r.value();
      if (!r.eat(',')) {
        r.expect(')');
        break;
      }
    }
    calls.push_back(std::move(c));
  } while (r.eat(','));
  if (bracketed) r.expect(']');
  if (!r.at_end()) r.fail("text after the calls");
  return calls;
}

}  // namespace

ojson parse_python_literal(const std::string& value) {
  PyReader r(value);
  ojson v = r.value();
  if (!r.at_end()) r.fail("text after the value");
  return v;
}

ParseResult parse_calls(const std::string& reply) {
  ParseResult res;
  // Every <tool_call>...</tool_call> block (Hermes / Qwen / SmolLM style).
  const std::string open = "<tool_call>", close = "</tool_call>";
  size_t pos = reply.find(open);
  if (pos != std::string::npos) {
    while (pos != std::string::npos) {
      const size_t start = pos + open.size();
      const size_t end = reply.find(close, start);
      std::vector<Call> calls;
      const std::string body = strip_fence(reply.substr(start, end == std::string::npos ? std::string::npos : end - start));
      if (!json_calls(body, calls)) {
        try {
          calls = python_calls(body);
        } catch (const std::invalid_argument& e) {
          res.error = "a <tool_call> block holds neither a JSON call nor a Python call: " + std::string(e.what());
          res.calls.clear();
          return res;
        }
      }
      res.calls.insert(res.calls.end(), calls.begin(), calls.end());
      pos = end == std::string::npos ? std::string::npos : reply.find(open, end + close.size());
    }
    res.ok = true;
    res.syntax = "tool_call tags";
    return res;
  }
  const std::string body = strip_fence(reply);
  if (json_calls(body, res.calls)) {
    res.ok = true;
    res.syntax = "json";
    return res;
  }
  try {
    res.calls = python_calls(body);
    res.ok = true;
    res.syntax = "python";
  } catch (const std::invalid_argument& e) {
    res.error = std::string("neither JSON nor Python call syntax: ") + e.what();
  }
  return res;
}

}  // namespace optiq::eval::bfcl
