// Splits a Jinja template into text and tag tokens, applying the whitespace rules of jinja2
// with trim_blocks and lstrip_blocks on (Hugging Face's setting): `{%-`/`-%}` strip all
// whitespace on that side; a block or comment tag's end eats one following newline; spaces and
// tabs before a block or comment tag at the start of a line are dropped; `+` turns either off.
// Newlines are normalized to \n and one trailing newline is dropped, as jinja2 does.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace optiq::jinja {

enum class Tok {
  Text,        // template data between tags
  VarBegin,    // {{
  VarEnd,      // }}
  BlockBegin,  // {%
  BlockEnd,    // %}
  Name,
  String,      // value already unescaped
  Int,
  Float,
  Op,          // operator or punctuation, text holds it
  Eof,
};

struct Token {
  Tok kind;
  std::string text;
  int line = 1;
};

// Throws jinja::Error with the line of the problem.
std::vector<Token> tokenize(const std::string& source);

// Python's str.isspace() set, which str.strip() and jinja2's `-` markers use.
bool is_python_space(char32_t c);

}  // namespace optiq::jinja
