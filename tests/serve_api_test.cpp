// optiq serve's API layer without a network or a model: request parsing and validation for the
// OpenAI and Anthropic front ends, the error shapes, the stream pieces, stop sequences and the
// API key check.
#include <gtest/gtest.h>

#include "serve/anthropic_api.h"
#include "serve/api_errors.h"
#include "serve/http_server.h"
#include "serve/metrics.h"
#include "serve/openai_api.h"
#include "serve/stop_scanner.h"

namespace optiq::serve {
namespace {

ServedModel test_model() {
  ServedModel m;
  m.alias = "tiny";
  m.file_name = "stories260K.gguf";
  m.path = "/models/stories260K.gguf";
  m.n_ctx = 256;
  m.kv_type_k = "q8_0";
  m.kv_type_v = "f16";
  return m;
}

Json chat_body() {
  return Json::parse(R"({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]})");
}

// The ApiError `fn` throws (fails the test when it throws none).
template <class Fn>
ApiError error_of(Fn&& fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError thrown";
  return ApiError(0, "");
}

TEST(ServeApi, ErrorShapes) {
  const ApiError e(400, "'n' must be 1", "n", "unsupported_parameter");
  const Json openai = Json::parse(error_body(ApiFlavor::OpenAI, e));
  EXPECT_EQ(openai["error"]["message"], "'n' must be 1");
  EXPECT_EQ(openai["error"]["type"], "invalid_request_error");
  EXPECT_EQ(openai["error"]["param"], "n");
  EXPECT_EQ(openai["error"]["code"], "unsupported_parameter");
  const Json bare = Json::parse(error_body(ApiFlavor::OpenAI, ApiError(404, "gone")));
  EXPECT_TRUE(bare["error"]["param"].is_null());
  EXPECT_TRUE(bare["error"]["code"].is_null());

  const Json anthropic = Json::parse(error_body(ApiFlavor::Anthropic, e));
  EXPECT_EQ(anthropic["type"], "error");
  EXPECT_EQ(anthropic["error"]["type"], "invalid_request_error");
  EXPECT_EQ(anthropic["error"]["message"], "'n' must be 1");
  EXPECT_EQ(Json::parse(error_body(ApiFlavor::Anthropic, ApiError(401, "x")))["error"]["type"], "authentication_error");
  EXPECT_EQ(Json::parse(error_body(ApiFlavor::Anthropic, ApiError(404, "x")))["error"]["type"], "not_found_error");
  EXPECT_EQ(Json::parse(error_body(ApiFlavor::Anthropic, ApiError(413, "x")))["error"]["type"], "request_too_large");
  EXPECT_EQ(Json::parse(error_body(ApiFlavor::Anthropic, ApiError(500, "x")))["error"]["type"], "api_error");
}

TEST(ServeApi, FlavorFollowsThePath) {
  EXPECT_EQ(flavor_for_path("/v1/messages"), ApiFlavor::Anthropic);
  EXPECT_EQ(flavor_for_path("/v1/messages/count_tokens"), ApiFlavor::Anthropic);
  EXPECT_EQ(flavor_for_path("/v1/chat/completions"), ApiFlavor::OpenAI);
  EXPECT_EQ(flavor_for_path("/nowhere"), ApiFlavor::OpenAI);
  EXPECT_EQ(flavor_for_path("/v1/messagesX"), ApiFlavor::OpenAI);
}

TEST(ServeApi, MalformedBodies) {
  EXPECT_EQ(error_of([] { parse_body("{\"model\": "); }).status(), 400);
  EXPECT_EQ(error_of([] { parse_body("[1, 2]"); }).status(), 400);
  EXPECT_EQ(error_of([] { parse_body(""); }).status(), 400);
  // A number beyond double's range is nlohmann's out_of_range, not a parse_error (fuzz_serve_requests).
  EXPECT_EQ(error_of([] { parse_body("{\"seed\": 922e372036854775807}"); }).status(), 400);
}

TEST(ServeApi, ChatCompletionFields) {
  Json body = chat_body();
  body["max_completion_tokens"] = 12;
  body["max_tokens"] = 99;  // the newer field wins
  body["temperature"] = 0;
  body["top_p"] = 0.5;
  body["top_k"] = 7;
  body["min_p"] = 0.1;
  body["seed"] = 42;
  body["stop"] = "\n\n";
  body["repeat_penalty"] = 1.1;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  body["chat_template_kwargs"] = {{"enable_thinking", false}};
  body["messages"] = Json::parse(R"([{"role": "developer", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}])");
  const GenerationRequest r = parse_chat_completion(body, test_model());
  EXPECT_TRUE(r.chat);
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(r.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(r.sampling.repeat_penalty, 1.1f);
  body["presence_penalty"] = 0.5;
  body["frequency_penalty"] = -1;
  const GenerationRequest penalized = parse_chat_completion(body, test_model());
  EXPECT_FLOAT_EQ(penalized.sampling.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(penalized.sampling.frequency_penalty, -1.0f);
  EXPECT_EQ(r.seed, 42u);
  EXPECT_EQ(r.stop, std::vector<std::string>{"\n\n"});
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  ASSERT_EQ(r.template_vars.size(), 1u);
  EXPECT_EQ(r.template_vars[0].first, "enable_thinking");
  ASSERT_EQ(r.messages.size(), 2u);
  EXPECT_EQ(r.messages[0]["role"], "system");
  EXPECT_EQ(r.messages[1]["content"], "a\nb");
}

TEST(ServeApi, ChatCompletionDefaults) {
  const GenerationRequest r = parse_chat_completion(chat_body(), test_model());
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_EQ(r.sampling.temperature, 1.0f);
  EXPECT_EQ(r.sampling.top_p, 1.0f);
  EXPECT_FALSE(r.stream);
  EXPECT_TRUE(r.stop.empty());
  EXPECT_TRUE(r.tools.is_null());
  EXPECT_FALSE(r.top_logprobs.has_value());
}

TEST(ServeApi, ChatLogprobs) {
  const ServedModel m = test_model();
  Json body = chat_body();
  body["logprobs"] = true;
  EXPECT_EQ(parse_chat_completion(body, m).top_logprobs, 0);
  body["top_logprobs"] = 20;
  EXPECT_EQ(parse_chat_completion(body, m).top_logprobs, 20);
  body["top_logprobs"] = 21;
  EXPECT_EQ(error_of([&] { parse_chat_completion(body, m); }).param(), "top_logprobs");
  body["logprobs"] = false;
  body["top_logprobs"] = 2;
  EXPECT_EQ(error_of([&] { parse_chat_completion(body, m); }).param(), "top_logprobs");
  body.erase("top_logprobs");
  EXPECT_FALSE(parse_chat_completion(body, m).top_logprobs.has_value());

  GenerationResult r;
  r.text = "Hi";
  r.completion_tokens = 1;
  r.logprobs = std::vector<TokenLogprob>{{"Hi", -0.5f, {{"Hi", -0.5f}, {"\xc3", -1.5f}}}};
  const Json lp = chat_completion({"chatcmpl-1", "tiny", 0}, r)["choices"][0]["logprobs"];
  EXPECT_EQ(lp["content"][0]["token"], "Hi");
  EXPECT_EQ(lp["content"][0]["logprob"], -0.5f);
  EXPECT_EQ(lp["content"][0]["bytes"], Json::parse("[72, 105]"));
  EXPECT_EQ(lp["content"][0]["top_logprobs"][1]["bytes"], Json::parse("[195]"));  // half a UTF-8 character
  EXPECT_EQ(lp["content"][0]["top_logprobs"].size(), 2u);
  r.logprobs.reset();
  EXPECT_TRUE(chat_completion({"chatcmpl-1", "tiny", 0}, r)["choices"][0]["logprobs"].is_null());
}

// fn throws an ApiError with this status and param.
template <class Fn>
void expect_api_error(Fn&& fn, int status, const std::string& param) {
  const ApiError e = error_of(std::forward<Fn>(fn));
  EXPECT_EQ(e.status(), status) << e.what();
  EXPECT_EQ(e.param(), param) << e.what();
}

TEST(ServeApi, ChatCompletionRejects) {
  const ServedModel m = test_model();
  auto with = [](const char* key, Json value) {
    Json b = chat_body();
    b[key] = std::move(value);
    return b;
  };
  struct Case {
    Json body;
    int status;
    const char* param;
  };
  const std::vector<Case> cases = {
      {with("temperature", "hot"), 400, "temperature"},
      {with("temperature", 3), 400, "temperature"},
      {with("max_tokens", 0), 400, "max_tokens"},
      {with("max_tokens", 1.5), 400, "max_tokens"},
      {with("n", 2), 400, "n"},
      {with("presence_penalty", 2.5), 400, "presence_penalty"},
      {with("frequency_penalty", -3), 400, "frequency_penalty"},
      {with("stop", 5), 400, "stop"},
      {with("stop", Json::array({"a", 1})), 400, "stop"},
      {with("stream", "yes"), 400, "stream"},
      {with("messages", Json::array()), 400, "messages"},
      {with("messages", "hi"), 400, "messages"},
      {with("messages", Json::parse(R"([{"role": "robot", "content": "x"}])")), 400, "messages[0].role"},
      {with("messages", Json::parse(R"([{"role": "user", "content": [{"type": "image_url"}]}])")), 400,
       "messages[0].content"},
      {with("messages", Json::parse(R"([{"role": "user"}])")), 400, "messages[0].content"},
      {with("response_format", {{"type", "xml"}}), 400, "response_format.type"},
      {with("chat_template_kwargs", "x"), 400, "chat_template_kwargs"},
      {with("model", "gpt-4o"), 404, "model"},
      {with("model", 7), 400, "model"},
  };
  for (const Case& c : cases) {
    const ApiError e = error_of([&] { parse_chat_completion(c.body, m); });
    EXPECT_EQ(e.status(), c.status) << c.body.dump();
    EXPECT_EQ(e.param(), c.param) << c.body.dump();
  }
  Json no_messages = chat_body();
  no_messages.erase("messages");
  EXPECT_EQ(error_of([&] { parse_chat_completion(no_messages, m); }).param(), "messages");
  EXPECT_EQ(error_of([&] { parse_chat_completion(with("model", "gpt-4o"), m); }).code(), "model_not_found");
}

TEST(ServeApi, ModelNames) {
  const ServedModel m = test_model();
  for (const char* name : {"tiny", "stories260K.gguf", "/models/stories260K.gguf", ""}) {
    Json b = chat_body();
    b["model"] = name;
    EXPECT_NO_THROW(parse_chat_completion(b, m)) << name;
  }
  Json b = chat_body();
  b.erase("model");
  EXPECT_NO_THROW(parse_chat_completion(b, m));  // OpenAI: optional here
}

TEST(ServeApi, Completions) {
  const ServedModel m = test_model();
  GenerationRequest r = parse_completion(Json::parse(R"({"prompt": "Once upon"})"), m);
  EXPECT_FALSE(r.chat);
  EXPECT_EQ(r.prompt, "Once upon");
  EXPECT_EQ(r.max_tokens, 16);  // the legacy API's default
  r = parse_completion(Json::parse(R"({"prompt": ["Once"], "max_tokens": 5, "stop": ["x", "y"]})"), m);
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_EQ(r.stop.size(), 2u);
  EXPECT_EQ(error_of([&] { parse_completion(Json::parse(R"({"prompt": [1, 2]})"), m); }).param(), "prompt");
  EXPECT_EQ(error_of([&] { parse_completion(Json::parse(R"({"prompt": ["a", "b"]})"), m); }).param(), "prompt");
  EXPECT_EQ(error_of([&] { parse_completion(Json::parse(R"({"prompt": ""})"), m); }).param(), "prompt");
  EXPECT_EQ(error_of([&] { parse_completion(Json::parse(R"({"max_tokens": 3})"), m); }).param(), "prompt");
  EXPECT_EQ(error_of([&] { parse_completion(Json::parse(R"({"prompt": "a", "echo": true})"), m); }).param(), "echo");
  // the legacy logprobs form is not implemented
  EXPECT_EQ(error_of([&] { parse_completion(Json::parse(R"({"prompt": "a", "logprobs": 2})"), m); }).param(), "logprobs");
  EXPECT_FALSE(parse_completion(Json::parse(R"({"prompt": "a", "logprobs": null})"), m).top_logprobs.has_value());
}

// Found by fuzz_serve_requests: integers at the edge of int64_t were range-checked through a
// double (2^63 - 1 rounds to 2^63, whose conversion back is undefined), and a non-string "type"
// in a content block or response_format threw json's type_error (a 500) instead of a 400.
TEST(ServeApi, IntegerEdgesAndNonStringTypes) {
  const ServedModel m = test_model();
  GenerationRequest r = parse_completion(Json::parse(R"({"prompt": "a", "seed": 9223372036854775807})"), m);
  EXPECT_EQ(r.seed, static_cast<uint32_t>(INT64_MAX));
  r = parse_completion(Json::parse(R"({"prompt": "a", "seed": -9223372036854775808})"), m);
  EXPECT_EQ(r.seed, static_cast<uint32_t>(INT64_MIN));
  r = parse_completion(Json::parse(R"({"prompt": "a", "max_tokens": 8.0})"), m);
  EXPECT_EQ(r.max_tokens, 8);
  for (const char* body : {R"({"prompt": "a", "seed": 9223372036854775808})", R"({"prompt": "a", "seed": 1e19})",
                           R"({"prompt": "a", "seed": 9.2233720368547758e18})", R"({"prompt": "a", "seed": -1e300})",
                           R"({"prompt": "a", "max_tokens": 18446744073709551615})"}) {
    const ApiError e = error_of([&] { parse_completion(Json::parse(body), m); });
    EXPECT_EQ(e.status(), 400) << body;
    EXPECT_NE(std::string(e.what()).find("must be between"), std::string::npos) << body;
  }
  EXPECT_EQ(error_of([&] { parse_completion(Json::parse(R"({"prompt": "a", "max_tokens": 2.5})"), m); }).param(), "max_tokens");
  EXPECT_EQ(error_of([&] {
              parse_messages(Json::parse(R"({"model": "tiny", "max_tokens": 1,
                  "messages": [{"role": "user", "content": [{"type": 5, "text": "x"}]}]})"), m);
            }).status(), 400);
  EXPECT_EQ(error_of([&] {
              parse_count_tokens(Json::parse(R"({"model": "tiny", "system": [{"type": null}],
                  "messages": [{"role": "user", "content": "x"}]})"), m);
            }).param(), "system");
  Json body = chat_body();
  body["response_format"] = {{"type", 1}};
  EXPECT_EQ(error_of([&] { parse_chat_completion(body, m); }).param(), "response_format");
  body["response_format"] = Json::object();
  EXPECT_EQ(error_of([&] { parse_chat_completion(body, m); }).param(), "response_format");
}

TEST(ServeApi, Messages) {
  const ServedModel m = test_model();
  const Json body = Json::parse(R"({"model": "tiny", "max_tokens": 20,
      "system": [{"type": "text", "text": "Be brief."}],
      "messages": [{"role": "user", "content": "Hi"},
                   {"role": "assistant", "content": [{"type": "text", "text": "Hello"}]},
                   {"role": "user", "content": "Again"}],
      "stop_sequences": ["END"], "temperature": 0, "top_k": 5, "stream": true,
      "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]})");
  const GenerationRequest r = parse_messages(body, m);
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0], Json::parse(R"({"role": "system", "content": "Be brief."})"));
  EXPECT_EQ(r.messages[2]["content"], "Hello");
  EXPECT_EQ(r.max_tokens, 20);
  EXPECT_EQ(r.stop, std::vector<std::string>{"END"});
  EXPECT_EQ(r.sampling.temperature, 0.0f);
  EXPECT_EQ(r.sampling.top_k, 5);
  EXPECT_TRUE(r.stream);
  ASSERT_TRUE(r.tools.is_array());
  EXPECT_EQ(r.tools[0]["type"], "function");
  EXPECT_EQ(r.tools[0]["function"]["name"], "get_weather");
  EXPECT_EQ(r.tools[0]["function"]["parameters"], Json::parse(R"({"type": "object"})"));

  const GenerationRequest count = parse_count_tokens(Json::parse(R"({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}]})"), m);
  EXPECT_EQ(count.messages.size(), 1u);
}

TEST(ServeApi, MessagesRejects) {
  const ServedModel m = test_model();
  auto body = [](const char* extra) {
    return Json::parse(std::string(R"({"model": "tiny", "messages": [{"role": "user", "content": "Hi"}])") + extra + "}");
  };
  EXPECT_EQ(error_of([&] { parse_messages(body(""), m); }).param(), "max_tokens");  // required
  EXPECT_EQ(error_of([&] { parse_messages(body(R"(, "max_tokens": "5")"), m); }).param(), "max_tokens");
  EXPECT_EQ(error_of([&] { parse_messages(body(R"(, "max_tokens": 5, "temperature": 1.5)"), m); }).param(), "temperature");
  EXPECT_EQ(error_of([&] { parse_messages(body(R"(, "max_tokens": 5, "stop_sequences": "x")"), m); }).param(),
            "stop_sequences");
  const ApiError wrong_model = error_of([&] {
    parse_messages(Json::parse(R"({"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]})"), m);
  });
  EXPECT_EQ(wrong_model.status(), 404);
  EXPECT_EQ(error_of([&] {
              parse_messages(Json::parse(R"({"max_tokens": 5, "messages": [{"role": "user", "content": "Hi"}]})"), m);
            }).param(),
            "model");
  EXPECT_EQ(error_of([&] {
              parse_messages(Json::parse(R"({"model": "tiny", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]})"), m);
            }).param(),
            "messages.0.role");
  EXPECT_EQ(error_of([&] {
              parse_messages(Json::parse(R"({"model": "tiny", "max_tokens": 5,
                  "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]})"), m);
            }).param(),
            "messages.0.content.0.type");
}

TEST(ServeApi, OpenAIResponseObjects) {
  GenerationResult r;
  r.text = r.output.content = "Hello";
  r.finish = FinishReason::Length;
  r.prompt_tokens = 7;
  r.completion_tokens = 3;
  const OpenAIResponseHead head{"chatcmpl-1", "tiny", 1700000000};
  const Json c = chat_completion(head, r);
  EXPECT_EQ(c["object"], "chat.completion");
  EXPECT_EQ(c["choices"][0]["message"]["content"], "Hello");
  EXPECT_EQ(c["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(c["usage"]["total_tokens"], 10);
  EXPECT_EQ(c["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
  r.cached_tokens = 5;  // inside prompt_tokens, as OpenAI counts them
  EXPECT_EQ(chat_completion(head, r)["usage"]["prompt_tokens_details"]["cached_tokens"], 5);
  EXPECT_EQ(chat_completion(head, r)["usage"]["prompt_tokens"], 7);
  const Json chunk = chat_completion_chunk(head, {{"content", "He"}}, nullptr, true);
  EXPECT_EQ(chunk["object"], "chat.completion.chunk");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_TRUE(chunk.contains("usage") && chunk["usage"].is_null());
  EXPECT_TRUE(chat_completion_usage_chunk(head, r)["choices"].empty());
  EXPECT_EQ(openai_sse(Json{{"a", 1}}), "data: {\"a\":1}\n\n");
  r.finish = FinishReason::StopSequence;
  EXPECT_EQ(text_completion(head, r)["choices"][0]["finish_reason"], "stop");
  auto adapter = std::make_shared<MountedAdapter>();
  adapter->id = 3;
  adapter->name = "support";
  const Json models = models_list(test_model(), {adapter});
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["optiq"]["kv_cache_type_k"], "q8_0");
  ASSERT_EQ(models["data"].size(), 2u);  // each mounted adapter is a model "BASE+NAME"
  EXPECT_EQ(models["data"][1]["id"], "tiny+support");
  EXPECT_EQ(models["data"][1]["optiq"]["lora_id"], 3);
}

TEST(ServeApi, AnthropicResponseObjects) {
  GenerationResult r;
  r.text = r.output.content = "Hi";
  r.finish = FinishReason::StopSequence;
  r.stop_sequence = "END";
  r.prompt_tokens = 4;
  r.completion_tokens = 2;
  const Json m = anthropic_message({"msg_1", "tiny"}, r);
  EXPECT_EQ(m["type"], "message");
  EXPECT_EQ(m["content"][0]["text"], "Hi");
  EXPECT_EQ(m["stop_reason"], "stop_sequence");
  EXPECT_EQ(m["stop_sequence"], "END");
  EXPECT_EQ(m["usage"]["input_tokens"], 4);
  EXPECT_EQ(m["usage"]["cache_read_input_tokens"], 0);
  r.cached_tokens = 3;  // Anthropic counts them apart: input_tokens is what came after the cache
  const Json cached = anthropic_message({"msg_1", "tiny"}, r)["usage"];
  EXPECT_EQ(cached["input_tokens"], 1);
  EXPECT_EQ(cached["cache_read_input_tokens"], 3);
  EXPECT_EQ(cached["cache_creation_input_tokens"], 0);
  const std::string start_cached = anthropic_message_start({"msg_1", "tiny"}, 4, 3);
  const Json sc = Json::parse(start_cached.substr(start_cached.find("data: ") + 6));
  EXPECT_EQ(sc["message"]["usage"]["input_tokens"], 1);
  EXPECT_EQ(sc["message"]["usage"]["cache_read_input_tokens"], 3);
  EXPECT_EQ(anthropic_stop_reason(FinishReason::EndOfText), std::string("end_turn"));
  EXPECT_EQ(anthropic_stop_reason(FinishReason::Length), std::string("max_tokens"));
  const std::string start = anthropic_message_start({"msg_1", "tiny"}, 4);
  EXPECT_EQ(start.rfind("event: message_start\ndata: {", 0), 0u);
  EXPECT_TRUE(start.ends_with("\n\n"));
  AnthropicContentStream blocks;
  const std::string delta = blocks.text("x");
  EXPECT_EQ(delta.rfind("event: content_block_start\n", 0), 0u);  // the text block opens first
  const std::string data = delta.substr(delta.rfind("data: ") + 6);
  const Json d = Json::parse(data);
  EXPECT_EQ(d["delta"]["type"], "text_delta");
  EXPECT_EQ(d["delta"]["text"], "x");
  EXPECT_EQ(d["index"], 0);
  EXPECT_EQ(blocks.text("y").find("content_block_start"), std::string::npos);
  const std::string tool = blocks.tool_use({"get_weather", {{"city", "Paris"}}});
  EXPECT_NE(tool.find("\"type\":\"content_block_stop\",\"index\":0"), std::string::npos) << tool;
  EXPECT_NE(tool.find("\"partial_json\":\"{\\\"city\\\":\\\"Paris\\\"}\""), std::string::npos) << tool;
  EXPECT_NE(tool.find("\"index\":1"), std::string::npos);
  EXPECT_EQ(blocks.close(), "");  // the tool_use block closed itself
  AnthropicContentStream empty;
  EXPECT_NE(empty.close().find("content_block_stop"), std::string::npos);
}

TEST(ServeApi, ToolCallsAndReasoningInResponses) {
  GenerationResult r;
  r.finish = FinishReason::ToolCalls;
  r.output.reasoning = "The user wants weather.";
  r.output.calls.push_back({"get_weather", {{"city", "Paris"}}});
  const Json c = chat_completion({"chatcmpl-1", "tiny", 1}, r);
  const Json& msg = c["choices"][0]["message"];
  EXPECT_TRUE(msg["content"].is_null());
  EXPECT_EQ(msg["reasoning_content"], "The user wants weather.");
  EXPECT_EQ(msg["tool_calls"][0]["type"], "function");
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "get_weather");
  EXPECT_EQ(Json::parse(msg["tool_calls"][0]["function"]["arguments"].get<std::string>())["city"], "Paris");
  EXPECT_EQ(msg["tool_calls"][0]["id"].get<std::string>().rfind("call_", 0), 0u);
  EXPECT_EQ(c["choices"][0]["finish_reason"], "tool_calls");
  const std::vector<Json> deltas = tool_call_deltas(r.output.calls);
  ASSERT_EQ(deltas.size(), 2u);
  EXPECT_EQ(deltas[0]["tool_calls"][0]["function"]["arguments"], "");
  EXPECT_EQ(deltas[1]["tool_calls"][0]["index"], 0);
  const Json m = anthropic_message({"msg_1", "tiny"}, r);
  EXPECT_EQ(m["content"][0]["type"], "thinking");
  EXPECT_EQ(m["content"][1]["type"], "tool_use");
  EXPECT_EQ(m["content"][1]["input"]["city"], "Paris");
  EXPECT_EQ(m["stop_reason"], "tool_use");
}

TEST(ServeApi, ToolChoiceAndResponseFormatParsing) {
  const Json tools = Json::parse(R"([{"type": "function", "function": {"name": "get_weather",
      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])");
  Json body = {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"tools", tools}};
  GenerationRequest req = parse_chat_completion(body, test_model());
  EXPECT_EQ(req.output_format.tool_names, std::vector<std::string>{"get_weather"});
  EXPECT_FALSE(req.constraint);
  body["tool_choice"] = "none";
  EXPECT_TRUE(parse_chat_completion(body, test_model()).output_format.tool_names.empty());
  body["tool_choice"] = "required";
  ASSERT_TRUE(parse_chat_completion(body, test_model()).constraint);
  body["tool_choice"] = {{"type", "function"}, {"function", {{"name", "nope"}}}};
  expect_api_error([&] { parse_chat_completion(body, test_model()); }, 400, "tool_choice");
  body["tool_choice"] = "sometimes";
  expect_api_error([&] { parse_chat_completion(body, test_model()); }, 400, "tool_choice");
  body.erase("tool_choice");
  body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", {{"type", "object"}}}}}};
  EXPECT_TRUE(parse_chat_completion(body, test_model()).constraint);
  body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"name", "x"}}}};
  expect_api_error([&] { parse_chat_completion(body, test_model()); }, 400, "response_format.json_schema.schema");
  body["response_format"] = {{"type", "json_schema"}, {"json_schema", {{"schema", {{"$ref", "#/$defs/missing"}}}}}};
  expect_api_error([&] { parse_chat_completion(body, test_model()); }, 400, "response_format");
  body["response_format"] = {{"type", "xml"}};
  expect_api_error([&] { parse_chat_completion(body, test_model()); }, 400, "response_format.type");

  // Anthropic: tool_use and tool_result blocks become OpenAI-style calls and tool messages.
  const Json a = Json::parse(R"({"model": "tiny", "max_tokens": 20,
    "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
    "tool_choice": {"type": "tool", "name": "get_weather"},
    "messages": [{"role": "user", "content": "Weather in Paris?"},
      {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]},
      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C"}]}]})");
  const GenerationRequest ar = parse_messages(a, test_model());
  ASSERT_EQ(ar.messages.size(), 3u);
  EXPECT_EQ(ar.messages[1]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
  EXPECT_EQ(ar.messages[2]["role"], "tool");
  EXPECT_EQ(ar.messages[2]["tool_call_id"], "toolu_1");
  EXPECT_EQ(ar.messages[2]["content"], "18 C");
  EXPECT_TRUE(ar.constraint);
  Json bad = a;
  bad["messages"][0]["content"] = Json::parse(R"([{"type": "tool_use", "id": "x", "name": "get_weather", "input": {}}])");
  expect_api_error([&] { parse_messages(bad, test_model()); }, 400, "messages.0.content.0.type");
}

TEST(ServeApi, StopSequencesAreCutAndHeldBack) {
  StopScanner s({"END", "\n\n"});
  EXPECT_EQ(s.update("Hello"), "Hello");
  EXPECT_EQ(s.update("Hello E"), " ");    // "E" could begin "END"
  EXPECT_EQ(s.update("Hello EN"), "");
  EXPECT_EQ(s.update("Hello ENx"), "ENx");  // it did not
  EXPECT_EQ(s.update("Hello ENx and\n"), " and");
  EXPECT_EQ(s.update("Hello ENx and\n\nmore"), "");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.matched(), "\n\n");
  EXPECT_EQ(s.update("Hello ENx and\n\nmore more"), "");
  EXPECT_EQ(s.finish("Hello ENx and\n\nmore more"), "");

  StopScanner tail({"END"});
  EXPECT_EQ(tail.update("abcEN"), "abc");
  EXPECT_EQ(tail.finish("abcEN"), "EN");  // generation ended: what was held back is text

  StopScanner utf8({});
  EXPECT_EQ(utf8.update("caf\xC3"), "caf");  // half of 'é'
  EXPECT_EQ(utf8.update("caf\xC3\xA9"), "\xC3\xA9");
}

TEST(ServeApi, ApiKeyComparison) {
  EXPECT_TRUE(api_key_matches("sk-secret", "sk-secret"));
  EXPECT_FALSE(api_key_matches("sk-secreT", "sk-secret"));
  EXPECT_FALSE(api_key_matches("", "sk-secret"));
  EXPECT_FALSE(api_key_matches("sk-secret-longer", "sk-secret"));
}

TEST(ServeApi, RequestApiKeyHeaders) {
  httplib::Request bearer;
  bearer.headers.emplace("Authorization", "Bearer k1");
  EXPECT_EQ(request_api_key(bearer), "k1");
  httplib::Request x;
  x.headers.emplace("x-api-key", "k2");
  EXPECT_EQ(request_api_key(x), "k2");
  EXPECT_EQ(request_api_key(httplib::Request{}), "");
}

TEST(ServeApi, PrometheusText) {
  Metrics m;
  m.record({"/v1/chat/completions", 200, 10, 5, 6, 0.03, 0.004});
  m.record({"/v1/chat/completions", 200, 3, 1, 0, 2.0, std::nullopt});
  m.record({"/v1/chat/completions", 400, 0, 0, 0, std::nullopt, std::nullopt});
  const std::string text = m.prometheus_text({1, 2, 3, 4096, 65536});
  EXPECT_NE(text.find("optiq_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_requests_total{route=\"/v1/chat/completions\",status=\"400\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_prompt_tokens_total 13\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_generated_tokens_total 6\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_prompt_cached_tokens_total 6\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_slots_busy 1\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_requests_waiting 3\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_kv_cache_bytes_in_use 4096\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_kv_cache_bytes_total 65536\n"), std::string::npos);
  // Cumulative buckets: 0.03 s lands in le=0.05 and above, 2 s in le=2.5 and above.
  EXPECT_NE(text.find("optiq_time_to_first_token_seconds_bucket{le=\"0.025\"} 0\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_time_to_first_token_seconds_bucket{le=\"0.05\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_time_to_first_token_seconds_bucket{le=\"2.5\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_time_to_first_token_seconds_sum 2.03\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_time_per_output_token_seconds_bucket{le=\"0.005\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("optiq_time_per_output_token_seconds_count 1\n"), std::string::npos);
}

}  // namespace
}  // namespace optiq::serve
