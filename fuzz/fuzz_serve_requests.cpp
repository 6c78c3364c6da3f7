// libFuzzer target for optiq serve's request parsers: the input is an HTTP request body, given
// to parse_body and then to every parser that turns a body into a GenerationRequest (OpenAI
// chat and text completions, Anthropic messages and count_tokens). A rejected body must end in
// ApiError with a 4xx status (the server answers anything else with a 500); any other
// exception, a crash or a sanitizer report is a bug. An accepted body must keep the promises
// the generator relies on, and what the generator then does with it must not throw either: the
// output constraint reads the input itself as if the model had written it, the output reader
// splits it into reasoning, text and calls of the request's tools, and the conversation is
// reshaped for templates with and without tool support.
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "serve/anthropic_api.h"
#include "serve/api_errors.h"
#include "serve/openai_api.h"
#include "serve/tool_prompt.h"

namespace optiq::serve {
namespace {

const ServedModel& model() {
  static const ServedModel m{.alias = "stories", .file_name = "stories260K.gguf", .path = "/models/stories260K.gguf",
                             .n_ctx = 256, .n_slots = 1, .kv_type_k = "f32", .kv_type_v = "f32", .created = 0};
  return m;
}

void check_error(const ApiError& e) {
  fuzz::require(e.status() == 400 || e.status() == 404, "request error with status " + std::to_string(e.status()));
  for (ApiFlavor flavor : {ApiFlavor::OpenAI, ApiFlavor::Anthropic}) {
    const Json body = Json::parse(error_body(flavor, e), nullptr, /*allow_exceptions=*/false);
    fuzz::require(body.is_object(), "error body is not a JSON object");
  }
}

void check_request(const GenerationRequest& r) {
  fuzz::require(!r.max_tokens || *r.max_tokens >= 1, "max_tokens below 1");
  for (const std::string& s : r.stop) fuzz::require(!s.empty(), "empty stop sequence");
  if (!r.chat) {
    fuzz::require(!r.prompt.empty(), "empty prompt");
    return;
  }
  fuzz::require(r.messages.is_array() && !r.messages.empty(), "chat request without messages");
  for (const Json& m : r.messages) {
    fuzz::require(m.is_object() && m.contains("role") && m["role"].is_string(), "message without a string role");
    const Json& content = m.contains("content") ? m["content"] : Json();
    fuzz::require(content.is_string() || (content.is_null() && m["role"] == "assistant"), "message content not a string");
  }
  // The server writes every response with invalid UTF-8 replaced; the template gets the
  // messages as they are, so dumping them must not throw either.
  (void)r.messages.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// What the generator does with an accepted request, on `text` as the model's output.
void use_request(const GenerationRequest& r, std::string_view text) {
  if (r.constraint) {
    for (size_t n : {text.size() / 2, text.size()}) (void)r.constraint->check(text.substr(0, n));
    (void)r.constraint->finished(text);
  }
  const ModelOutput out = parse_model_output(text, r.output_format);
  for (const ToolCall& c : out.calls) fuzz::require(c.arguments.is_object(), "a call whose arguments are not an object");
  (void)streamable_output(text, r.output_format);
  if (r.chat)
    for (const char* source : {"{{ messages }}", "{{ tools }} tool_calls 'tool' arguments | tojson", "message['tools']"})
      (void)prepare_for_template(source, r.messages, r.tools);
}

template <class Parse>
void run(Parse&& parse, const Json& body, std::string_view text) {
  try {
    const GenerationRequest r = parse(body, model());
    check_request(r);
    use_request(r, text);
  } catch (const ApiError& e) {
    check_error(e);
  }
}

}  // namespace
}  // namespace optiq::serve

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace optiq::serve;
  Json body;
  try {
    body = parse_body(std::string(reinterpret_cast<const char*>(data), size));
  } catch (const ApiError& e) {
    check_error(e);
    return 0;
  }
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  run(parse_chat_completion, body, text);
  run(parse_completion, body, text);
  run(parse_messages, body, text);
  run(parse_count_tokens, body, text);
  return 0;
}
