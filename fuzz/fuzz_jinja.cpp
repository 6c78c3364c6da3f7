// libFuzzer target for the Jinja lexer, parser and interpreter. The input is a template; a
// malformed or failing one must end in InputError (with the template line), anything else (a
// crash, a sanitizer report, a hang past -timeout, memory past -rss_limit_mb) is a bug. Templates
// that parse are rendered against a small conversation under step and output limits, so that a
// loop over range(100000) inside another is an error rather than a timeout.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_check.h"
#include "model/jinja_interpreter.h"
#include "util/error.h"

namespace optiq::fuzz {
namespace {

using jinja::Value;

std::vector<std::pair<std::string, Value>> conversation() {
  auto message = [](const char* role, const char* content) {
    return Value::dict({{Value("role"), Value(role)}, {Value("content"), Value(content)}});
  };
  const Value call = Value::dict(
      {{Value("type"), Value("function")},
       {Value("function"), Value::dict({{Value("name"), Value("f")},
                                        {Value("arguments"), Value::dict({{Value("x"), Value(1.5)}})}})}});
  Value assistant = Value::dict({{Value("role"), Value("assistant")},
                                 {Value("content"), Value::none()},
                                 {Value("tool_calls"), Value::list({call})}});
  return {
      {"messages", Value::list({message("system", "Be brief."), message("user", " Hi é "), assistant,
                                message("tool", "{\"ok\": true}"), message("assistant", "<think>x</think>Done")})},
      {"tools", Value::list({call})},
      {"add_generation_prompt", Value(true)},
      {"bos_token", Value("<s>")},
      {"eos_token", Value("</s>")},
      {"enable_thinking", Value(false)},
  };
}

}  // namespace
}  // namespace optiq::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace optiq;
  const std::string source(reinterpret_cast<const char*>(data), size);
  static const auto vars = fuzz::conversation();
  try {
    const jinja::Template t(source, "fuzz.jinja");
    const std::string out = t.render(vars, {.max_steps = 20000, .max_output_bytes = 1 << 20});
    fuzz::require(out.size() <= (1 << 20) + 65536, "output limit not enforced");
  } catch (const InputError& e) {
    const std::string what = e.what();
    fuzz::require(what.rfind("fuzz.jinja: line ", 0) == 0, "error without a template line: " + what);
  }
  return 0;
}
