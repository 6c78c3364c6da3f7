// Constrained decoding's check: can a text still become a JSON document that a JSON Schema
// accepts (optionally between a fixed prefix and suffix), and is it one already? optiq serve
// asks this of every candidate token (the text so far plus the token's piece) when a request
// wants response_format json_object / json_schema or forces a tool call, so the output always
// parses and validates.
//
// The check re-reads the whole text each time (texts are hundreds of bytes; no parser state is
// kept between tokens). The schema keywords it enforces: type (one or a list), properties,
// required, additionalProperties (false, or absent while properties are given: closed; true or
// a schema: open), items, prefixItems, minItems, maxItems, enum, const, anyOf, oneOf, allOf of
// one schema, nullable, $ref to "#", "#/$defs/..." or "#/definitions/...", minLength,
// maxLength. Other keywords (pattern, format, minimum, ...) are not enforced; the output still
// parses as JSON. Whitespace runs are capped at kMaxWhitespace characters, so a model cannot
// spin in whitespace until max_tokens.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace optiq::constrain {

class JsonConstraint {
 public:
  enum class State {
    Invalid,   // no continuation makes a valid document
    Partial,   // a prefix of some valid document, not one yet
    Complete,  // a valid document (it may still go on: a number can take more digits)
  };
  static constexpr size_t kMaxWhitespace = 16;
  static constexpr int kMaxDepth = 32;  // nesting of arrays and objects

  // `schema`: an object (true-like {} accepts any JSON value). Throws InputError (field
  // "schema") for a schema that is not an object or a $ref that does not resolve.
  explicit JsonConstraint(nlohmann::ordered_json schema, std::string prefix = "", std::string suffix = "");

  State check(std::string_view text) const;
  // Complete, and no byte can extend it (the document ends in a closing character, or the suffix
  // is written out): generation can stop here.
  bool finished(std::string_view text) const;

 private:
  nlohmann::ordered_json schema_;
  std::string prefix_, suffix_;
};

}  // namespace optiq::constrain
