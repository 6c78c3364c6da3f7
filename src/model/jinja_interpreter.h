// optiq's Jinja interpreter: the subset of jinja2 that real chat templates use, with jinja2's
// semantics (see README "Chat templates" for the list). A Template is parsed once and can be
// rendered many times; errors are InputError(name, -, "line N: ...") with the template line.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/jinja_ast.h"
#include "model/jinja_value.h"

namespace optiq::jinja {

struct RenderLimits {
  // 0: unlimited. Bounds for untrusted templates (the fuzzer): statements and loop iterations
  // executed, and bytes of output.
  uint64_t max_steps = 0;
  uint64_t max_output_bytes = 0;
};

class Template {
 public:
  // `name` labels errors: the file the template came from.
  Template(const std::string& source, std::string name);

  // `vars` are the template's globals besides jinja2's own (range, dict, namespace).
  std::string render(const std::vector<std::pair<std::string, Value>>& vars,
                     const RenderLimits& limits = {}) const;

 private:
  Body body_;
  std::string name_;
};

}  // namespace optiq::jinja
