#include "model/jinja_interpreter.h"

#include <memory>
#include <unordered_map>

#include "model/jinja_builtins.h"
#include "util/error.h"

namespace optiq::jinja {
namespace {

// Like Python's recursion limit: a macro that calls itself forever ends in an error, not a
// stack overflow.
constexpr int kMaxCallDepth = 50;

// jinja2 scoping: a for-loop iteration and a macro call get a fresh scope whose writes stay
// inside it (hence namespace()); if-blocks share their enclosing scope.
struct Scope {
  std::unordered_map<std::string, Value> vars;
  std::shared_ptr<Scope> parent;

  const Value* find(const std::string& name) const {
    for (const Scope* s = this; s; s = s->parent.get()) {
      auto it = s->vars.find(name);
      if (it != s->vars.end()) return &it->second;
    }
    return nullptr;
  }
};
using ScopePtr = std::shared_ptr<Scope>;

enum class Flow { Normal, Break, Continue };

class Interpreter {
 public:
  Interpreter(ScopePtr root, const RenderLimits& limits) : root_(std::move(root)), limits_(limits) {}

  Flow exec(const Body& body, const ScopePtr& scope, std::string& out) {
    for (const NodePtr& n : body) {
      const Flow f = exec_node(*n, scope, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Value eval(const Expr& e, const ScopePtr& scope) {
    try {
      return eval_inner(e, scope);
    } catch (Error& err) {
      if (err.line == 0) err.line = e.line;
      throw;
    }
  }

 private:
  void step() {
    if (limits_.max_steps && ++steps_ > limits_.max_steps)
      throw Error(0, "the template ran more than " + std::to_string(limits_.max_steps) + " steps");
  }

  void emit(std::string& out, const std::string& s) {
    out += s;
    if (limits_.max_output_bytes && out.size() > limits_.max_output_bytes)
      throw Error(0, "the output grew past " + std::to_string(limits_.max_output_bytes) + " bytes");
  }

  Flow exec_node(const Node& n, const ScopePtr& scope, std::string& out) {
    try {
      step();
      return exec_inner(n, scope, out);
    } catch (Error& err) {
      if (err.line == 0) err.line = n.line;
      throw;
    }
  }

  Flow exec_inner(const Node& n, const ScopePtr& scope, std::string& out) {
    switch (n.kind) {
      case Node::Kind::Text: emit(out, n.text); return Flow::Normal;
      case Node::Kind::Output: emit(out, eval(*n.expr, scope).str()); return Flow::Normal;
      case Node::Kind::If:
        for (const auto& [cond, body] : n.branches)
          if (eval(*cond, scope).truthy()) return exec(body, scope, out);
        return exec(n.else_body, scope, out);
      case Node::Kind::For: return exec_for(n, scope, out);
      case Node::Kind::Set: assign(n.target, eval(*n.expr, scope), *scope); return Flow::Normal;
      case Node::Kind::SetBlock: {
        std::string captured;
        exec(n.body, scope, captured);
        assign(n.target, Value(std::move(captured)), *scope);
        return Flow::Normal;
      }
      case Node::Kind::Macro: define_macro(n, scope); return Flow::Normal;
      case Node::Kind::Break: return Flow::Break;
      case Node::Kind::Continue: return Flow::Continue;
      case Node::Kind::Scope: return exec(n.body, scope, out);
    }
    return Flow::Normal;
  }

  void assign(const Target& t, Value v, Scope& scope) {
    if (!t.attr.empty()) {
      const Value* ns = scope.find(t.names[0]);
      if (!ns || ns->type() != Value::Type::Namespace)
        throw Error(0, "cannot assign attribute on non-namespace object");
      ns->namespace_ref().set(t.attr, std::move(v));
      return;
    }
    if (t.names.size() == 1) {
      scope.vars[t.names[0]] = std::move(v);
      return;
    }
    std::vector<Value> items = iterate(v);
    if (items.size() != t.names.size())
      throw Error(0, std::string(items.size() < t.names.size() ? "not enough" : "too many") +
                         " values to unpack (expected " + std::to_string(t.names.size()) + ", got " +
                         std::to_string(items.size()) + ")");
    for (size_t i = 0; i < items.size(); ++i) scope.vars[t.names[i]] = std::move(items[i]);
  }

  Flow exec_for(const Node& n, const ScopePtr& scope, std::string& out) {
    const Value seq = eval(*n.expr, scope);
    if (!seq.is_undefined() && !seq.is_list() && !seq.is_dict() && !seq.is_string())
      throw Error(n.expr->line, "'" + seq.type_name() + "' object is not iterable");
    std::vector<Value> items = iterate(seq);
    if (n.filter) {
      std::vector<Value> kept;
      for (Value& item : items) {
        step();
        auto s = std::make_shared<Scope>();
        s->parent = scope;
        assign(n.target, item, *s);
        if (eval(*n.filter, s).truthy()) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      auto s = std::make_shared<Scope>();
      s->parent = scope;
      exec(n.else_body, s, out);
      return Flow::Normal;
    }
    const auto len = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < len; ++i) {
      step();
      auto s = std::make_shared<Scope>();
      s->parent = scope;
      assign(n.target, items[i], *s);
      s->vars["loop"] = loop_object(items, i);
      if (exec(n.body, s, out) == Flow::Break) break;
    }
    return Flow::Normal;
  }

  static Value loop_object(const std::vector<Value>& items, int64_t i) {
    const auto len = static_cast<int64_t>(items.size());
    auto cycle = [i](CallArgs& a) -> Value {
      if (a.positional.empty()) throw Error(0, "no items for cycling given");
      return a.positional[static_cast<size_t>(i) % a.positional.size()];
    };
    return Value::dict({
        {Value("index"), Value(i + 1)},
        {Value("index0"), Value(i)},
        {Value("revindex"), Value(len - i)},
        {Value("revindex0"), Value(len - i - 1)},
        {Value("first"), Value(i == 0)},
        {Value("last"), Value(i == len - 1)},
        {Value("length"), Value(len)},
        {Value("depth"), Value(1)},
        {Value("depth0"), Value(0)},
        {Value("previtem"), i > 0 ? items[i - 1] : Value::undefined("there is no previous item")},
        {Value("nextitem"), i + 1 < len ? items[i + 1] : Value::undefined("there is no next item")},
        {Value("cycle"), Value::callable("cycle", cycle)},
    });
  }

  void define_macro(const Node& n, const ScopePtr& scope) {
    // A weak reference: the macro usually lives in the very scope it captures, and a strong
    // one would be a reference cycle.
    std::weak_ptr<Scope> defining = scope;
    const Node* node = &n;
    scope->vars[n.text] = Value::callable(n.text, [this, node, defining](CallArgs& args) {
      return call_macro(*node, defining.lock(), args);
    });
  }

  Value call_macro(const Node& n, ScopePtr defining, CallArgs& args) {
    if (args.positional.size() > n.params.size())
      throw Error(0, "macro '" + n.text + "' takes not more than " + std::to_string(n.params.size()) +
                         " argument(s)");
    for (const auto& [key, v] : args.keyword) {
      bool known = false;
      for (const auto& p : n.params) known = known || p.first == key;
      if (!known) throw Error(0, "macro '" + n.text + "' takes no keyword argument '" + key + "'");
    }
    auto s = std::make_shared<Scope>();
    s->parent = defining ? defining : root_;
    for (size_t i = 0; i < n.params.size(); ++i) {
      const auto& [pname, def] = n.params[i];
      if (i < args.positional.size()) {
        s->vars[pname] = args.positional[i];
        continue;
      }
      const Value* kw = nullptr;
      for (const auto& [k, v] : args.keyword)
        if (k == pname) kw = &v;
      if (kw) s->vars[pname] = *kw;
      else if (def) s->vars[pname] = eval(*def, s);
      else s->vars[pname] = Value::undefined("parameter '" + pname + "' was not provided");
    }
    std::string out;
    exec(n.body, s, out);
    return Value(std::move(out));
  }

  Value eval_inner(const Expr& e, const ScopePtr& scope) {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: {
        const Value* v = scope->find(e.name);
        return v ? *v : Value::undefined("'" + e.name + "' is undefined");
      }
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        std::vector<Value> items;
        for (const auto& a : e.args) items.push_back(eval(*a, scope));
        return Value::list(std::move(items), e.kind == Expr::Kind::Tuple);
      }
      case Expr::Kind::Dict: {
        std::vector<std::pair<Value, Value>> items;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i], scope);
          Value v = eval(*e.args[i + 1], scope);
          bool replaced = false;
          for (auto& [old_k, old_v] : items)
            if (equals(old_k, k)) {
              old_v = v;
              replaced = true;
            }
          if (!replaced) items.emplace_back(std::move(k), std::move(v));
        }
        return Value::dict(std::move(items));
      }
      case Expr::Kind::Attr: {
        const Value obj = eval(*e.args[0], scope);
        return get_attr(obj, e.name);
      }
      case Expr::Kind::Item: {
        const Value obj = eval(*e.args[0], scope);
        return get_item(obj, eval(*e.args[1], scope));
      }
      case Expr::Kind::Slice: {
        const Value obj = eval(*e.args[0], scope);
        auto part = [&](int i) { return e.args[i] ? eval(*e.args[i], scope) : Value::none(); };
        return get_slice(obj, part(1), part(2), part(3));
      }
      case Expr::Kind::Call: {
        const Value f = eval(*e.args[0], scope);
        CallArgs args = eval_args(e, scope);
        struct Depth {
          int& d;
          explicit Depth(int& d) : d(d) {
            if (++d > kMaxCallDepth) throw Error(0, "maximum recursion depth exceeded");
          }
          ~Depth() { --d; }
        } depth(call_depth_);
        return call(f, args);
      }
      case Expr::Kind::Filter: {
        const Value v = eval(*e.args[0], scope);
        CallArgs args = eval_args(e, scope);
        return apply_filter(e.name, v, args);
      }
      case Expr::Kind::Test: {
        const Value v = eval(*e.args[0], scope);
        CallArgs args = eval_args(e, scope);
        return Value(apply_test(e.name, v, args));
      }
      case Expr::Kind::Neg:
      case Expr::Kind::Pos: {
        const Value v = eval(*e.args[0], scope);
        v.require_defined();
        if (!v.is_number())
          throw Error(0, std::string("bad operand type for unary ") + (e.kind == Expr::Kind::Neg ? "-" : "+") +
                             ": '" + v.type_name() + "'");
        if (e.kind == Expr::Kind::Pos) return v.type() == Value::Type::Bool ? Value(v.as_int()) : v;
        if (v.is_int()) {
          if (v.as_int() == INT64_MIN) throw Error(0, "integer overflow (optiq uses 64-bit integers)");
          return Value(-v.as_int());
        }
        return Value(-v.as_double());
      }
      case Expr::Kind::Not: return Value(!eval(*e.args[0], scope).truthy());
      case Expr::Kind::Binary: {
        Value a = eval(*e.args[0], scope);
        if (e.name == "and") return a.truthy() ? eval(*e.args[1], scope) : a;
        if (e.name == "or") return a.truthy() ? a : eval(*e.args[1], scope);
        return binary_op(e.name, a, eval(*e.args[1], scope));
      }
      case Expr::Kind::Compare: {
        Value left = eval(*e.args[0], scope);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = eval(*e.args[i + 1], scope);
          if (!compare(e.ops[i], left, right)) return Value(false);
          left = std::move(right);
        }
        return Value(true);
      }
      case Expr::Kind::Cond:
        if (eval(*e.args[0], scope).truthy()) return eval(*e.args[1], scope);
        if (e.args[2]) return eval(*e.args[2], scope);
        return Value::undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined.");
    }
    return Value();
  }

  static bool compare(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return equals(a, b);
    if (op == "!=") return !equals(a, b);
    if (op == "<") return less(a, b);
    if (op == ">") return less(b, a);
    if (op == "<=") return less(a, b) || equals(a, b);
    if (op == ">=") return less(b, a) || equals(a, b);
    if (op == "in") return contains(b, a);
    return !contains(b, a);
  }

  CallArgs eval_args(const Expr& e, const ScopePtr& scope) {
    CallArgs args;
    for (size_t i = 1; i < e.args.size(); ++i) args.positional.push_back(eval(*e.args[i], scope));
    for (const auto& [k, v] : e.kwargs) args.keyword.emplace_back(k, eval(*v, scope));
    return args;
  }

  ScopePtr root_;
  RenderLimits limits_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
};

}  // namespace

Template::Template(const std::string& source, std::string name) : name_(std::move(name)) {
  try {
    body_ = parse_template(source);
  } catch (const Error& e) {
    throw InputError(name_, std::nullopt, "line " + std::to_string(e.line) + ": " + e.what());
  }
}

std::string Template::render(const std::vector<std::pair<std::string, Value>>& vars,
                             const RenderLimits& limits) const {
  const NamespaceScope namespaces;  // declared first: cleared after every other value is gone
  auto root = std::make_shared<Scope>();
  add_globals(root->vars);
  for (const auto& [k, v] : vars) root->vars[k] = v;
  Interpreter interp(root, limits);
  std::string out;
  try {
    interp.exec(body_, root, out);
  } catch (const Error& e) {
    throw InputError(name_, std::nullopt, "line " + std::to_string(e.line) + ": " + e.what());
  }
  return out;
}

}  // namespace optiq::jinja
