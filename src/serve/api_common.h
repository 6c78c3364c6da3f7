// What the OpenAI and Anthropic front ends share: the model the server runs, as its requests
// name it, and response ids.
#pragma once

#include <cstdint>
#include <string>

#include "serve/generation_request.h"
#include "serve/request_fields.h"

namespace optiq::serve {

struct ServedModel {
  std::string alias;      // --alias, else the file name: the id /v1/models lists
  std::string file_name;  // the model file's (or folder's) name, e.g. "stories260K.gguf"
  std::string path;       // MODEL as given on the command line
  int64_t n_ctx = 0;      // context of each slot, in tokens
  int n_slots = 1;        // --parallel
  std::string kv_type_k, kv_type_v;  // KV cache storage ("f32", "q8_0", "mixed" per layer, ...)
  int64_t created = 0;    // Unix time the server started
};

// A request that names a model must name this one: its alias, its file name or the path it was
// started with, optionally followed by "+ADAPTER" names (request_adapters). Anything else is an
// ApiError 404 (OpenAI code "model_not_found"); a request without "model" (or with an empty one)
// gets the served model. `required`: Anthropic's API requires the field.
void check_model_name(const Json& body, const ServedModel& model, bool required);


// "<prefix><24 random hex digits>", e.g. "chatcmpl-3f9c...".
std::string random_id(const char* prefix);

// tool_choice's forced forms in both APIs: the output must be one call of `only` (of any of the
// request's tools when `only` is empty), enforced by constrained decoding (forced_tool_call).
// ApiError 400 when the request has no tools (param `param`), when `only` is not among them
// (param `name_param`), or when a tool's schema cannot be enforced (param "tools").
void force_tool_call(GenerationRequest& req, const std::string& only, const char* param, const char* name_param);

}  // namespace optiq::serve
