// Recursive descent over the tokens, with jinja2's grammar and operator precedence (lowest
// first): `x if c else y`, or, and, not, comparisons and `in` (chained), + -, ~, * / // %, **,
// unary - +, then postfix `.attr`, `[index]`, `[a:b:c]`, `(call)`, `| filter` and `is test`.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

#include "model/jinja_ast.h"
#include "model/jinja_lexer.h"

namespace optiq::jinja {
namespace {

// Deep enough for any real template; shallow enough that hostile nesting cannot overflow the
// stack (each level is a few parser frames, later a few interpreter frames).
constexpr int kMaxDepth = 100;

std::shared_ptr<Node> new_node(Node::Kind kind, int line) {
  auto n = std::make_shared<Node>();
  n->kind = kind;
  n->line = line;
  return n;
}

std::shared_ptr<Expr> new_expr(Expr::Kind kind, int line) {
  auto e = std::make_shared<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

bool one_of(const std::string& s, std::initializer_list<const char*> options) {
  for (const char* o : options)
    if (s == o) return true;
  return false;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : t_(std::move(tokens)) {}

  Body parse() {
    std::string end;
    Body body = parse_until({}, end);
    return body;
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
  void advance() {
    if (i_ + 1 < t_.size()) ++i_;
  }
  bool is_op(const char* op) const { return cur().kind == Tok::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().kind == Tok::Name && cur().text == n; }

  [[noreturn]] void fail(const std::string& what) const { throw Error(cur().line, what); }

  std::string describe(const Token& t) const {
    switch (t.kind) {
      case Tok::Eof: return "end of template";
      case Tok::BlockEnd: return "end of statement block";
      case Tok::VarEnd: return "end of print statement";
      case Tok::String: return "string literal";
      case Tok::Text: return "template data";
      default: return "'" + t.text + "'";
    }
  }

  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
    advance();
  }
  std::string expect_name() {
    if (cur().kind != Tok::Name) fail("expected a name, got " + describe(cur()));
    std::string n = cur().text;
    advance();
    return n;
  }
  void expect_block_end() {
    if (cur().kind != Tok::BlockEnd) fail("expected end of statement block, got " + describe(cur()));
    advance();
  }

  struct DepthGuard {
    explicit DepthGuard(Parser& p) : p(p) {
      if (++p.depth_ > kMaxDepth) p.fail("template nested too deeply");
    }
    ~DepthGuard() { --p.depth_; }
    Parser& p;
  };

  // Parses nodes until a block tag named in `ends`; consumes `{%` and that name, stores the
  // name in `found`, and leaves the rest of the tag to the caller.
  Body parse_until(std::initializer_list<const char*> ends, std::string& found) {
    DepthGuard guard(*this);
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.kind == Tok::Eof) {
        if (ends.size() == 0) return body;
        std::string names;
        for (const char* e : ends) names += std::string(names.empty() ? "" : " or ") + "'" + e + "'";
        fail("unexpected end of template, expected " + names);
      }
      if (t.kind == Tok::Text) {
        auto n = new_node(Node::Kind::Text, t.line);
        n->text = t.text;
        body.push_back(std::move(n));
        advance();
      } else if (t.kind == Tok::VarBegin) {
        advance();
        auto n = new_node(Node::Kind::Output, t.line);
        n->expr = parse_tuple(true);
        if (cur().kind != Tok::VarEnd) fail("expected end of print statement, got " + describe(cur()));
        advance();
        body.push_back(std::move(n));
      } else if (t.kind == Tok::BlockBegin) {
        advance();
        if (cur().kind != Tok::Name) fail("expected a tag name, got " + describe(cur()));
        for (const char* e : ends)
          if (cur().text == e) {
            found = e;
            advance();
            return body;
          }
        body.push_back(statement());
      } else {
        fail("unexpected " + describe(t));
      }
    }
  }

  NodePtr statement() {
    const int line = cur().line;
    const std::string tag = cur().text;
    advance();
    auto n = new_node(Node::Kind::Text, line);
    std::string found;
    if (tag == "if") {
      n->kind = Node::Kind::If;
      ExprPtr cond = parse_tuple(false);
      while (true) {
        expect_block_end();
        Body b = parse_until({"elif", "else", "endif"}, found);
        n->branches.emplace_back(cond, std::move(b));
        if (found != "elif") break;
        cond = parse_tuple(false);
      }
      if (found == "else") {
        expect_block_end();
        n->else_body = parse_until({"endif"}, found);
      }
    } else if (tag == "for") {
      n->kind = Node::Kind::For;
      n->target = parse_target(false);
      if (!is_name("in")) fail("expected 'in' in a for loop, got " + describe(cur()));
      advance();
      n->expr = parse_tuple(false);
      if (is_name("if")) {
        advance();
        n->filter = parse_expression(true);
      }
      if (is_name("recursive")) fail("recursive for loops are not supported by optiq");
      expect_block_end();
      ++loop_depth_;
      n->body = parse_until({"else", "endfor"}, found);
      --loop_depth_;
      if (found == "else") {
        expect_block_end();
        n->else_body = parse_until({"endfor"}, found);
      }
    } else if (tag == "set") {
      n->target = parse_target(true);
      if (is_op("=")) {
        advance();
        n->kind = Node::Kind::Set;
        n->expr = parse_tuple(true);
      } else {
        if (is_op("|")) fail("filters on {% set %} blocks are not supported by optiq");
        if (!n->target.attr.empty() || n->target.names.size() != 1)
          fail("a {% set %} block assigns to one plain name");
        n->kind = Node::Kind::SetBlock;
        expect_block_end();
        n->body = parse_until({"endset"}, found);
      }
    } else if (tag == "macro") {
      n->kind = Node::Kind::Macro;
      n->text = expect_name();
      expect_op("(");
      while (!is_op(")")) {
        std::string p = expect_name();
        ExprPtr def;
        if (is_op("=")) {
          advance();
          def = parse_expression(true);
        } else if (!n->params.empty() && n->params.back().second) {
          fail("non-default argument '" + p + "' follows default argument");
        }
        n->params.emplace_back(std::move(p), std::move(def));
        if (!is_op(",")) break;
        advance();
      }
      expect_op(")");
      expect_block_end();
      n->body = parse_until({"endmacro"}, found);
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("'" + tag + "' outside of a for loop");
      n->kind = tag == "break" ? Node::Kind::Break : Node::Kind::Continue;
    } else if (tag == "generation") {
      n->kind = Node::Kind::Scope;
      expect_block_end();
      n->body = parse_until({"endgeneration"}, found);
    } else if (one_of(tag, {"include", "extends", "import", "from", "block", "call", "filter",
                            "with", "autoescape", "do", "trans", "pluralize"})) {
      throw Error(line, "the '" + tag + "' tag is not supported by optiq's Jinja subset");
    } else if (one_of(tag, {"elif", "else", "endif", "endfor", "endset", "endmacro", "endgeneration"})) {
      throw Error(line, "unexpected '" + tag + "' tag");
    } else {
      throw Error(line, "unknown tag '" + tag + "'");
    }
    expect_block_end();
    return n;
  }

  // for-loop targets are names (a, b); set targets also allow ns.attr.
  Target parse_target(bool allow_attr) {
    Target t;
    const bool paren = is_op("(");
    if (paren) advance();
    t.names.push_back(expect_name());
    if (allow_attr && !paren && is_op(".")) {
      advance();
      t.attr = expect_name();
      return t;
    }
    while (is_op(",")) {
      advance();
      if (cur().kind != Tok::Name) break;
      t.names.push_back(expect_name());
    }
    if (paren) expect_op(")");
    return t;
  }

  std::shared_ptr<Expr> make(Expr::Kind k, int line, std::vector<ExprPtr> args = {}, std::string name = {}) {
    auto e = new_expr(k, line);
    e->args = std::move(args);
    e->name = std::move(name);
    return e;
  }

  bool at_tuple_end() const {
    const Tok k = cur().kind;
    return k == Tok::VarEnd || k == Tok::BlockEnd || k == Tok::Eof || is_op(")") ||
           (k == Tok::Name && (cur().text == "if" || cur().text == "recursive"));
  }

  ExprPtr parse_tuple(bool with_condexpr) {
    const int line = cur().line;
    std::vector<ExprPtr> items{parse_expression(with_condexpr)};
    bool tuple = false;
    while (is_op(",")) {
      advance();
      tuple = true;
      if (at_tuple_end()) break;
      items.push_back(parse_expression(with_condexpr));
    }
    return tuple ? make(Expr::Kind::Tuple, line, std::move(items)) : items[0];
  }

  ExprPtr parse_expression(bool with_condexpr) {
    DepthGuard guard(*this);
    ExprPtr e = parse_or();
    while (with_condexpr && is_name("if")) {
      const int line = cur().line;
      advance();
      ExprPtr cond = parse_or();
      ExprPtr other;
      if (is_name("else")) {
        advance();
        other = parse_expression(true);
      }
      e = make(Expr::Kind::Cond, line, {cond, e, other});
    }
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const int line = cur().line;
      advance();
      e = make(Expr::Kind::Binary, line, {e, parse_and()}, "or");
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const int line = cur().line;
      advance();
      e = make(Expr::Kind::Binary, line, {e, parse_not()}, "and");
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      DepthGuard guard(*this);
      const int line = cur().line;
      advance();
      return make(Expr::Kind::Not, line, {parse_not()});
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const int line = cur().line;
    ExprPtr first = parse_math1();
    auto e = new_expr(Expr::Kind::Compare, line);
    e->args.push_back(first);
    while (true) {
      if (cur().kind == Tok::Op && one_of(cur().text, {"==", "!=", "<", ">", "<=", ">="})) {
        e->ops.push_back(cur().text);
        advance();
      } else if (is_name("in")) {
        e->ops.push_back("in");
        advance();
      } else if (is_name("not") && peek().kind == Tok::Name && peek().text == "in") {
        e->ops.push_back("not in");
        advance();
        advance();
      } else {
        break;
      }
      e->args.push_back(parse_math1());
    }
    return e->ops.empty() ? first : e;
  }

  ExprPtr binary_chain(ExprPtr (Parser::*next)(), std::initializer_list<const char*> ops) {
    ExprPtr e = (this->*next)();
    while (cur().kind == Tok::Op && one_of(cur().text, ops)) {
      const int line = cur().line;
      std::string op = cur().text;
      advance();
      e = make(Expr::Kind::Binary, line, {e, (this->*next)()}, op);
    }
    return e;
  }
  ExprPtr parse_math1() { return binary_chain(&Parser::parse_concat, {"+", "-"}); }
  ExprPtr parse_concat() { return binary_chain(&Parser::parse_math2, {"~"}); }
  ExprPtr parse_math2() { return binary_chain(&Parser::parse_pow, {"*", "/", "//", "%"}); }
  ExprPtr parse_pow() { return binary_chain(&Parser::parse_unary_filtered, {"**"}); }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    const int line = cur().line;
    ExprPtr e;
    if (is_op("-")) {
      advance();
      e = make(Expr::Kind::Neg, line, {parse_unary(false)});
    } else if (is_op("+")) {
      advance();
      e = make(Expr::Kind::Pos, line, {parse_unary(false)});
    } else {
      e = parse_primary();
    }
    e = parse_postfix(e);
    return with_filter ? parse_filter_expr(e) : e;
  }

  ExprPtr literal(Value v, int line) {
    auto e = new_expr(Expr::Kind::Literal, line);
    e->value = std::move(v);
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    const int line = t.line;
    switch (t.kind) {
      case Tok::Name: {
        std::string n = t.text;
        advance();
        if (n == "true" || n == "True") return literal(Value(true), line);
        if (n == "false" || n == "False") return literal(Value(false), line);
        if (n == "none" || n == "None") return literal(Value::none(), line);
        return make(Expr::Kind::Name, line, {}, n);
      }
      case Tok::String: {
        std::string s;
        while (cur().kind == Tok::String) {
          s += cur().text;
          advance();
        }
        return literal(Value(std::move(s)), line);
      }
      case Tok::Int: {
        errno = 0;
        const long long v = std::strtoll(t.text.c_str(), nullptr, 10);
        if (errno == ERANGE) fail("integer literal " + t.text + " is too large (optiq uses 64-bit integers)");
        advance();
        return literal(Value(static_cast<int64_t>(v)), line);
      }
      case Tok::Float: {
        const double v = std::strtod(t.text.c_str(), nullptr);
        advance();
        return literal(Value(v), line);
      }
      default: break;
    }
    if (is_op("(")) {
      advance();
      if (is_op(")")) {
        advance();
        return make(Expr::Kind::Tuple, line);
      }
      ExprPtr e = parse_tuple(true);
      expect_op(")");
      return e;
    }
    if (is_op("[")) {
      advance();
      std::vector<ExprPtr> items;
      while (!is_op("]")) {
        items.push_back(parse_expression(true));
        if (!is_op(",")) break;
        advance();
      }
      expect_op("]");
      return make(Expr::Kind::List, line, std::move(items));
    }
    if (is_op("{")) {
      advance();
      std::vector<ExprPtr> items;
      while (!is_op("}")) {
        items.push_back(parse_expression(true));
        expect_op(":");
        items.push_back(parse_expression(true));
        if (!is_op(",")) break;
        advance();
      }
      expect_op("}");
      return make(Expr::Kind::Dict, line, std::move(items));
    }
    fail("unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      const int line = cur().line;
      if (is_op(".")) {
        advance();
        if (cur().kind == Tok::Int) {
          ExprPtr index = parse_primary();
          e = make(Expr::Kind::Item, line, {e, index});
        } else {
          e = make(Expr::Kind::Attr, line, {e}, expect_name());
        }
      } else if (is_op("[")) {
        advance();
        e = parse_subscript(e, line);
      } else if (is_op("(")) {
        e = parse_call(make(Expr::Kind::Call, line, {e}));
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr target, int line) {
    ExprPtr parts[3];
    if (!is_op(":")) {
      parts[0] = parse_expression(true);
      if (is_op("]")) {
        advance();
        return make(Expr::Kind::Item, line, {target, parts[0]});
      }
    }
    expect_op(":");
    if (!is_op("]") && !is_op(":")) parts[1] = parse_expression(true);
    if (is_op(":")) {
      advance();
      if (!is_op("]")) parts[2] = parse_expression(true);
    }
    expect_op("]");
    return make(Expr::Kind::Slice, line, {target, parts[0], parts[1], parts[2]});
  }

  // Appends `(args, name=value)` to e's args/kwargs; cur() is the "(".
  ExprPtr parse_call(std::shared_ptr<Expr> e) {
    expect_op("(");
    while (!is_op(")")) {
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported by optiq");
      if (cur().kind == Tok::Name && peek().kind == Tok::Op && peek().text == "=") {
        std::string key = cur().text;
        advance();
        advance();
        e->kwargs.emplace_back(std::move(key), parse_expression(true));
      } else {
        if (!e->kwargs.empty()) fail("positional argument after a keyword argument");
        e->args.push_back(parse_expression(true));
      }
      if (!is_op(",")) break;
      advance();
    }
    expect_op(")");
    return e;
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      const int line = cur().line;
      if (is_op("|")) {
        advance();
        auto f = new_expr(Expr::Kind::Filter, line);
        f->name = expect_name();
        f->args.push_back(e);
        e = is_op("(") ? parse_call(f) : f;
      } else if (is_name("is")) {
        advance();
        bool negated = false;
        if (is_name("not")) {
          negated = true;
          advance();
        }
        auto t = new_expr(Expr::Kind::Test, line);
        t->name = expect_name();
        t->args.push_back(e);
        const Token& c = cur();
        if (is_op("(")) {
          e = parse_call(t);
        } else {
          const bool arg_start = c.kind == Tok::Name || c.kind == Tok::String || c.kind == Tok::Int ||
                                 c.kind == Tok::Float || is_op("[") || is_op("{");
          if (arg_start && !is_name("else") && !is_name("or") && !is_name("and")) {
            if (is_name("is")) fail("you cannot chain multiple tests with is");
            t->args.push_back(parse_postfix(parse_primary()));
          }
          e = t;
        }
        if (negated) e = make(Expr::Kind::Not, line, {e});
      } else if (is_op("(")) {
        e = parse_call(make(Expr::Kind::Call, line, {e}));
      } else {
        return e;
      }
    }
  }

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body parse_template(const std::string& source) { return Parser(tokenize(source)).parse(); }

}  // namespace optiq::jinja
