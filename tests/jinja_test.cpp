// The Jinja interpreter, feature by feature. Expected outputs are what Python jinja2 3.1 renders
// in Hugging Face's environment (trim_blocks, lstrip_blocks, loopcontrols, json.dumps tojson)
// for the same template and variables.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

#include "model/chat_template.h"
#include "model/jinja_interpreter.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq {
namespace {

using jinja::Value;

std::vector<std::pair<std::string, Value>> sample_vars() {
  const auto j = nlohmann::ordered_json::parse(R"({
    "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
    "d": {"b": 1, "a": [1.5, true, null], "s": "é\"\n"},
    "s": "  Hello World  ", "n": 7, "f": 2.0})");
  std::vector<std::pair<std::string, Value>> vars;
  for (const auto& [k, v] : j.items()) vars.emplace_back(k, Value::from_json(v));
  return vars;
}

std::string render(const std::string& source) {
  return jinja::Template(source, "t.jinja").render(sample_vars());
}

// The error message of rendering `source`, or "" when it renders.
std::string render_error(const std::string& source) {
  try {
    render(source);
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

struct Case {
  const char* name;
  const char* source;
  const char* expected;
};

const Case kCases[] = {
    {"for_loop_vars",
     R"~({% for m in msgs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ m.role }};{% endfor %})~",
     R"~(102TrueFalse2user;211FalseTrue2assistant;)~"},
    {"for_else_filter",
     R"~({% for x in [1,2,3,4] if x is even %}{{ x }}{% else %}empty{% endfor %}|{% for x in [] %}x{% else %}empty{% endfor %})~",
     R"~(24|empty)~"},
    {"for_unpack_items",
     R"~({% for k, v in d|items %}{{ k }}={{ v }},{% endfor %})~",
     R"~(b=1,a=[1.5, True, None],s=é"
,)~"},
    {"loop_controls",
     R"~({% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %})~",
     R"~(0134)~"},
    {"loop_scope",
     R"~({% set y = 5 %}{% for x in [1,2] %}{{ y }}{% set y = x %}{{ y }}{% endfor %}{{ y }})~",
     R"~(51525)~"},
    {"namespace",
     R"~({% set ns = namespace(c=0, last='') %}{% for m in msgs %}{% set ns.c = ns.c + 1 %}{% set ns.last = m.role %}{% endfor %}{{ ns.c }} {{ ns.last }})~",
     R"~(2 assistant)~"},
    {"if_elif_else",
     R"~({% for n in [1,2,3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %} {% endfor %})~",
     R"~(one two many )~"},
    {"macro",
     R"~({% macro tag(name, body='x') %}<{{ name }}>{{ body }}</{{ name }}>{% endmacro %}{{ tag('a') }}{{ tag('b', body='y') }}{{ tag('c', 'z') }})~",
     R"~(<a>x</a><b>y</b><c>z</c>)~"},
    {"set_block",
     R"~({% set x %}a{{ 1 + 1 }}b{% endset %}[{{ x }}])~",
     R"~([a2b])~"},
    {"arith",
     R"~({{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 2 ** 10 }} {{ 1 + 2.0 }} {{ 3 * 'ab' }} {{ [1] + [2] }} {{ true + 1 }})~",
     R"~(3 -4 2 3.5 2.0 1024 3.0 ababab [1, 2] 2)~"},
    {"printing",
     R"~({{ 1.0 }} {{ 1e20 }} {{ 1e-5 }} {{ 0.1 + 0.2 }} {{ none }} {{ true }} {{ [1, 'a', none] }} {{ {'a': 1} }} {{ (1,) }} {{ undefined_var }}|)~",
     R"~(1.0 1e+20 1e-05 0.30000000000000004 None True [1, 'a', None] {'a': 1} (1,) |)~"},
    {"strings",
     R"~({{ 'a' ~ 1 ~ none }} {{ 'abc'[1] }} {{ 'abcdef'[1:4] }} {{ 'abc'[::-1] }} {{ [1,2,3][-2:] }} {{ 'b' in 'abc' }} {{ 'x' not in ['x'] }} {{ 'a' 'b' }})~",
     R"~(a1None b bcd cba [2, 3] True False ab)~"},
    {"escapes",
     R"~({{ 'a\\nb' }}|{{ "q\"q" }}|{{ 'tab\there' }}|{{ '\u00e9\x41' }}|{{ '\d' }})~",
     R"~(a\nb|q"q|tab	here|éA|\d)~"},
    {"str_methods",
     R"~({{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'a,b,,c'.split(',') }}|{{ ' a  b '.split() }}|{{ 'x.y.z'.rsplit('.', 1) }}|{{ s.strip().startswith('Hell') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'aXbX'.replace('X', '-') }}|{{ 'abc'.upper() }}|{{ 'Hi {}!'.format('you') }}|{{ '--a--'.strip('-') }})~",
     R"~(Hello World|Hello World  |  Hello World|['a', 'b', '', 'c']|['a', 'b']|['x.y', 'z']|True|True|a-b-|ABC|Hi you!|a)~"},
    {"filters_text",
     R"~({{ s|trim }}|{{ s|upper }}|{{ s|lower }}|{{ 'hello world'|title }}|{{ 'hELLO'|capitalize }}|{{ 'a-b'|replace('-', '+') }}|{{ n|string }}|{{ '42'|int + 1 }}|{{ '2.5'|float }}|{{ -3|abs }})~",
     R"~(Hello World|  HELLO WORLD  |  hello world  |Hello World|Hello|a+b|7|43|2.5|3)~"},
    {"filters_seq",
     R"~({{ msgs|length }}|{{ msgs|first }}|{{ (msgs|last).role }}|{{ msgs|map(attribute='role')|join(', ') }}|{{ [1,0,2,none]|select|list }}|{{ [1,2,3,4]|reject('odd')|list }}|{{ msgs|selectattr('role', 'equalto', 'user')|list|length }}|{{ [3,1,2]|sort }}|{{ [1,2,3]|reverse|list }}|{{ [1,2,2,1]|unique|list }}|{{ [1,2,3]|sum }}|{{ ['a','b']|map('upper')|list }})~",
     R"~(2|{'role': 'user', 'content': 'hi'}|assistant|user, assistant|[1, 2]|[2, 4]|1|[1, 2, 3]|[3, 2, 1]|[1, 2]|6|['A', 'B'])~"},
    {"default",
     R"~({{ missing|default('dflt') }}|{{ ''|default('empty', true) }}|{{ none|default('n') }}|{{ d.nokey|d('x') }})~",
     R"~(dflt|empty|None|x)~"},
    {"tojson",
     R"~({{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ [1, {'k': 'v'}]|tojson(separators=(',', ':')) }}|{{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}|{{ 'é'|tojson(ensure_ascii=true) }}|{{ f|tojson }})~",
     R"~({"b": 1, "a": [1.5, true, null], "s": "é\"\n"}|{
  "b": 1,
  "a": [
    1.5,
    true,
    null
  ],
  "s": "é\"\n"
}|[1,{"k":"v"}]|{"a": 2, "b": 1}|"\u00e9"|2.0)~"},
    {"tests",
     R"~({{ x is defined }}{{ msgs is defined }}{{ none is none }}{{ 's' is string }}{{ d is mapping }}{{ msgs is iterable }}{{ 1 is number }}{{ 1 is integer }}{{ 1.0 is float }}{{ false is false }}{{ 3 is odd }}{{ 4 is divisibleby 2 }}{{ 'a' is in 'abc' }}{{ x is not defined }})~",
     R"~(FalseTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrueTrue)~"},
    {"cond_expr",
     R"~({{ 'y' if n > 5 else 'n' }}{{ 'y' if n < 5 }}|{{ n > 5 and 'yes' or 'no' }}|{{ 0 or 'fallback' }}|{{ 1 < n < 10 }})~",
     R"~(y|yes|fallback|True)~"},
    {"dict_access",
     R"~({{ d.b }}{{ d['b'] }}{{ d.get('b') }}{{ d.get('zz', 9) }}{{ d.keys()|list }}{{ d.values()|list|length }}{{ 'b' in d }}{{ msgs[0]['role'] }}{{ msgs.0.role }})~",
     R"~(1119['b', 'a', 's']3Trueuseruser)~"},
    {"whitespace",
     R"~(<{% if true %}
  a
  {% endif %}
>|<  {%- if true -%}  b  {%- endif -%}  >|<{{- ' c ' -}}>|  {# comment #}
|
    {%+ if true %}d{% endif %})~",
     R"~(<  a
>|<b>|< c >|  |
    d)~"},
    {"raw",
     R"~({% raw %}{{ not evaluated }}{% endraw %})~",
     R"~({{ not evaluated }})~"},
};

TEST(Jinja, MatchesJinja2) {
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(render(c.source), c.expected);
  }
}

// A namespace that holds itself (found by fuzz_jinja) is printed as Python prints a cycle
// instead of recursing until the stack overflows.
TEST(Jinja, SelfReferenceIsPrintedNotRecursed) {
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% set ns.n = ns %}{{ ns }}"),
            "<Namespace {'n': <Namespace {...}>}>");
  EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% set ns.n = ns %}{{ ns.n ~ '/' }}"),
            "<Namespace {'n': <Namespace {...}>}>/");
}

TEST(Jinja, TrailingNewlineAndCrLfNormalized) {
  EXPECT_EQ(render("a\r\nb\n"), "a\nb");
  EXPECT_EQ(render("a\n\n"), "a\n");
}

TEST(Jinja, ErrorsNameTheTemplateLine) {
  EXPECT_EQ(render_error("line1\n{{ 1 +\n}}"), "t.jinja: line 3: unexpected end of print statement");
  EXPECT_EQ(render_error("a\nb\n{{ x.y }}"), "t.jinja: line 3: 'x' is undefined");
  EXPECT_EQ(render_error("\n{% for x in msgs %}\n{{ x.role.nope.deeper }}{% endfor %}"),
            "t.jinja: line 3: 'str object' has no attribute 'nope'");
  EXPECT_EQ(render_error("{% if true %}\n{{ raise_exception('bad') }}{% endif %}"),
            "t.jinja: line 2: 'raise_exception' is undefined");
  EXPECT_EQ(render_error("\n\n{{ 'a' + 1 }}"), "t.jinja: line 3: can only concatenate str (not \"int\") to str");
  EXPECT_EQ(render_error("{% for x in msgs %}"), "t.jinja: line 1: unexpected end of template, expected 'else' or 'endfor'");
  EXPECT_EQ(render_error("{% endif %}"), "t.jinja: line 1: unexpected 'endif' tag");
  EXPECT_EQ(render_error("{{ 1 < 'a' }}"), "t.jinja: line 1: '<' not supported between instances of 'int' and 'str'");
  EXPECT_EQ(render_error("{{ msgs.append(1) }}"),
            "t.jinja: line 1: access to attribute 'append' of 'list' object is unsafe (templates cannot modify their inputs)");
  EXPECT_EQ(render_error("{% macro f(a) %}{% endmacro %}{{ f(1, 2) }}"),
            "t.jinja: line 1: macro 'f' takes not more than 1 argument(s)");
  EXPECT_EQ(render_error("{% set x = 1 %}{% set x.y = 2 %}"), "t.jinja: line 1: cannot assign attribute on non-namespace object");
  EXPECT_EQ(render_error("{{ 'a' | nosuchfilter }}"), "t.jinja: line 1: no filter named 'nosuchfilter'");
  EXPECT_EQ(render_error("{{ 1 is nosuchtest }}"), "t.jinja: line 1: no test named 'nosuchtest'");
  EXPECT_EQ(render_error("{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}"),
            "t.jinja: line 1: maximum recursion depth exceeded");
  EXPECT_EQ(render_error("{{ range(200000)|length }}"),
            "t.jinja: line 1: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
}

TEST(Jinja, UnsupportedConstructsSayWhat) {
  EXPECT_EQ(render_error("\n{% include 'x.jinja' %}"),
            "t.jinja: line 2: the 'include' tag is not supported by optiq's Jinja subset");
  EXPECT_EQ(render_error("{{ 'x'|wordwrap }}"), "t.jinja: line 1: the filter 'wordwrap' is not supported by optiq");
  EXPECT_EQ(render_error("{{ '%s' % 1 }}"), "t.jinja: line 1: printf-style '%' string formatting is not supported by optiq");
  EXPECT_EQ(render_error("{{ cycler(1) }}"), "t.jinja: line 1: the global 'cycler' is not supported by optiq");
  EXPECT_EQ(render_error("{% for x in msgs recursive %}{% endfor %}"),
            "t.jinja: line 1: recursive for loops are not supported by optiq");
}

TEST(Jinja, UndefinedBehavesLikeJinja2) {
  EXPECT_EQ(render("[{{ nope }}]{{ nope is defined }}{{ nope|length }}{{ nope == nope }}{% for x in nope %}x{% endfor %}"),
            "[]False0True");
  EXPECT_EQ(render("{{ d.missing is defined }}{{ msgs[5] is defined }}{{ (msgs|first).role }}"), "FalseFalseuser");
  EXPECT_NE(render_error("{{ nope + 1 }}"), "");
}

TEST(Jinja, RenderLimitsStopRunawayTemplates) {
  const jinja::Template t("{% for i in range(1000) %}{% for j in range(1000) %}x{% endfor %}{% endfor %}", "t.jinja");
  EXPECT_THROW(t.render({}, {.max_steps = 10000}), InputError);
  EXPECT_THROW(t.render({}, {.max_output_bytes = 1000}), InputError);
  EXPECT_EQ(t.render({}).size(), 1000000u);
}

TEST(Jinja, PythonFloatRepr) {
  EXPECT_EQ(jinja::python_float_repr(1.0), "1.0");
  EXPECT_EQ(jinja::python_float_repr(-0.0), "-0.0");
  EXPECT_EQ(jinja::python_float_repr(1e16), "1e+16");
  EXPECT_EQ(jinja::python_float_repr(123456789012345.6), "123456789012345.6");
  EXPECT_EQ(jinja::python_float_repr(0.0001), "0.0001");
  EXPECT_EQ(jinja::python_float_repr(0.00001234), "1.234e-05");
  EXPECT_EQ(jinja::python_float_repr(1.5e300), "1.5e+300");
}

TEST(ChatTemplate, RendersHfFolderWithSpecialTokensAndFixedDate) {
  ::setenv("OPTIQ_FIXED_DATE", "2024-07-26", 1);
  const ChatTemplate t = load_chat_template(test::shared_dir() / "models/templates/llama-3.2-instruct");
  ChatRequest req;
  req.messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": " Hi "}])");
  req.add_generation_prompt = true;
  EXPECT_EQ(render_chat(t, req),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
            "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  ::unsetenv("OPTIQ_FIXED_DATE");
}

TEST(ChatTemplate, ExtraVarsAndRaiseException) {
  const ChatTemplate t = load_chat_template(test::shared_dir() / "models/templates/qwen3");
  ChatRequest req;
  req.messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "Hi"}])");
  req.add_generation_prompt = true;
  req.vars.emplace_back("enable_thinking", false);
  EXPECT_EQ(render_chat(t, req), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");

  const ChatTemplate mistral = load_chat_template(test::shared_dir() / "models/templates/mistral-7b-instruct-v0.3");
  req.messages = nlohmann::ordered_json::parse(R"([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])");
  try {
    render_chat(mistral, req);
    FAIL() << "expected the template to raise";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("line 1: the template raised an exception: Conversation roles must alternate"),
              std::string::npos) << e.what();
  }
}

TEST(ChatTemplate, CliRendersExactly) {
  test::ScratchDir dir;
  test::write_text(dir / "t.jinja", "{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}{{ x }}");
  test::write_text(dir / "m.json", R"([{"role": "user", "content": "a\nb"}])");
  const auto r = test::run_optiq("template --template-file " + (dir / "t.jinja").string() + " --messages " +
                                 (dir / "m.json").string() + " --var bos_token='<s>' --var x=1.50");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.output, "<s>[a\nb]1.5");
  test::write_text(dir / "bad.json", "[{");
  const auto bad = test::run_optiq("template --template-file " + (dir / "t.jinja").string() + " --messages " +
                                   (dir / "bad.json").string());
  EXPECT_EQ(bad.exit_code, 2);
}

}  // namespace
}  // namespace optiq
