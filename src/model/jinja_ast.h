// The syntax tree of a parsed Jinja template: expressions and statements, each with the
// template line it came from so that errors point there.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja_value.h"

namespace optiq::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Kind {
    Literal,  // value
    Name,     // name
    List,     // args
    Tuple,    // args
    Dict,     // args: key, value, key, value, ...
    Attr,     // args[0].name
    Item,     // args[0][args[1]]
    Slice,    // args[0][args[1]:args[2]:args[3]], absent parts are null
    Call,     // args[0](args[1:], kwargs)
    Filter,   // args[0] | name(args[1:], kwargs)
    Test,     // args[0] is name(args[1:], kwargs)
    Neg,      // -args[0]
    Pos,      // +args[0]
    Not,      // not args[0]
    Binary,   // args[0] name args[1], name one of + - * / // % ** ~ and or
    Compare,  // args[0] ops[0] args[1] ops[1] args[2] ...: Python's chained comparison
    Cond,     // args[1] if args[0] else args[2] (args[2] null: undefined)
  };
  Kind kind = Kind::Literal;
  int line = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct Node;
using NodePtr = std::shared_ptr<const Node>;
using Body = std::vector<NodePtr>;

// Where a {% set %} or a for loop stores: plain names (a tuple when more than one), or one
// namespace attribute (name.attr).
struct Target {
  std::vector<std::string> names;
  std::string attr;  // non-empty: names[0].attr
};

struct Node {
  enum class Kind {
    Text,      // text
    Output,    // {{ expr }}
    If,        // branches (condition, body) ..., else_body
    For,       // target in expr [if filter]: body, else_body
    Set,       // target = expr
    SetBlock,  // {% set target %}body{% endset %}
    Macro,     // name(params): body
    Break,
    Continue,
    Scope,     // a body rendered in place: {% generation %} (Hugging Face's assistant mask tag)
  };
  Kind kind = Kind::Text;
  int line = 0;
  std::string text;
  ExprPtr expr;
  ExprPtr filter;
  Target target;
  Body body;
  Body else_body;
  std::vector<std::pair<ExprPtr, Body>> branches;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters, default or null
};

// Throws jinja::Error with the line of the problem.
Body parse_template(const std::string& source);

}  // namespace optiq::jinja
