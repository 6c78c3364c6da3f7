#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "model/chat_template.h"
#include "util/error.h"
#include "util/json_file.h"

namespace optiq::cli {
namespace {

using ojson = nlohmann::ordered_json;

ojson read_json_array(const std::string& path) {
  const ojson j = read_json_file<ojson>(path);
  if (!j.is_array()) throw InputError(path, std::nullopt, "expected a JSON array");
  return j;
}

// name=value; the value is JSON when it parses as JSON (false, 3, "x", [..]), else a string.
std::pair<std::string, ojson> parse_var(const std::string& arg) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0)
    throw InputError("--var", std::nullopt, "expected name=value, got '" + arg + "'");
  const std::string value = arg.substr(eq + 1);
  ojson v = ojson::parse(value, nullptr, false);
  if (v.is_discarded()) v = value;
  return {arg.substr(0, eq), std::move(v)};
}

}  // namespace

Command register_template(CLI::App& app) {
  struct Args {
    std::string model;
    std::string template_file;
    std::string messages;
    std::string tools;
    bool add_generation_prompt = false;
    std::vector<std::string> vars;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("template", "Render a conversation with a model's chat template");
  sub->add_option("model", args->model, "HF model folder, hub id org/name[@revision], or .gguf");
  sub->add_option("--template-file", args->template_file, "a .jinja template (instead of the model's)");
  sub->add_option("--messages", args->messages, "JSON array of OpenAI-style messages")->required();
  sub->add_option("--tools", args->tools, "JSON array of tool definitions");
  sub->add_flag("--add-generation-prompt", args->add_generation_prompt, "end with the assistant turn's header");
  sub->add_option("--var", args->vars, "extra template variable name=value (JSON value, else a string)")
      ->allow_extra_args(false);
  return {sub, [args] {
            if (args->model.empty() && args->template_file.empty())
              throw InputError("template", std::nullopt, "give a MODEL or --template-file");
            ChatTemplate tmpl;
            if (!args->model.empty()) tmpl = load_chat_template(resolve_model_argument(args->model));
            if (!args->template_file.empty()) {
              ChatTemplate file = chat_template_from_file(args->template_file);
              file.special_tokens = std::move(tmpl.special_tokens);
              tmpl = std::move(file);
            }
            ChatRequest req;
            req.messages = read_json_array(args->messages);
            if (!args->tools.empty()) req.tools = read_json_array(args->tools);
            req.add_generation_prompt = args->add_generation_prompt;
            for (const auto& v : args->vars) req.vars.push_back(parse_var(v));
            const std::string out = render_chat(tmpl, req);
            std::fwrite(out.data(), 1, out.size(), stdout);
            return 0;
          }};
}

}  // namespace optiq::cli
