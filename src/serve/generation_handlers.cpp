// The three generating endpoints (/v1/chat/completions, /v1/completions, /v1/messages): parse,
// tokenize and check against the context, take a slot, then either answer with one JSON object
// or stream server-sent events in the endpoint's API.
#include <algorithm>
#include <ctime>

#include "serve/anthropic_api.h"
#include "serve/api_errors.h"
#include "serve/http_server.h"
#include "serve/openai_api.h"
#include "util/error.h"

namespace optiq::serve {
namespace {

int64_t unix_now() { return static_cast<int64_t>(std::time(nullptr)); }

}  // namespace

void HttpServer::handle_generation(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  try {
    bool python = false;
    const Json body = options_.python_tool && endpoint != Endpoint::Completions
                          ? with_python_tool(parse_body(req.body), endpoint == Endpoint::Messages, python)
                          : parse_body(req.body);
    GenerationRequest request = endpoint == Endpoint::ChatCompletions ? parse_chat_completion(body, model_)
                                : endpoint == Endpoint::Completions   ? parse_completion(body, model_)
                                                                      : parse_messages(body, model_);
    request.server_python = python;
    request.adapters = request_adapters(body, adapters_);
    std::vector<int32_t> prompt = generator_.tokenize_prompt(request);
    generator_.check_context(static_cast<int64_t>(prompt.size()), request.max_tokens, request.chat ? "messages" : "prompt");
    std::shared_ptr<SlotLease> slot = generator_.acquire_slot(prompt, Generator::adapter_key(request.adapters));

    if (request.stream && stopping_) {
      // httplib no longer calls a content provider once the server is stopping, so a stream
      // that got its slot after the stop (it was waiting) is generated here and sent whole,
      // as one body of the same events: requests in flight still get their answer.
      std::string events;
      httplib::DataSink buffer;
      buffer.write = [&](const char* data, size_t n) {
        events.append(data, n);
        return true;
      };
      buffer.is_writable = [] { return true; };
      buffer.done = [] {};
      stream_generation(buffer, *slot, request, prompt, endpoint);
      res.set_header("Cache-Control", "no-cache");
      res.set_content(events, "text/event-stream");
      return;
    }
    if (request.stream) {
      res.set_header("Cache-Control", "no-cache");
      // httplib calls the provider after this handler returns, on the same worker thread, to
      // write the body; the whole generation runs inside that one call.
      res.set_chunked_content_provider(
          "text/event-stream", [this, slot, request, prompt, endpoint](size_t, httplib::DataSink& sink) {
            const bool finished = stream_generation(sink, *slot, request, prompt, endpoint);
            if (finished) sink.done();
            return finished;
          });
      return;
    }

    std::vector<PythonRun> runs;
    const GenerationResult result = run_rounds(
        *slot, request, std::move(prompt), [](const std::string&, std::span<const TokenLogprob>) { return true; },
        [](const GenerationResult&) { return true; }, runs);
    note_result(result);
    Json out;
    if (endpoint == Endpoint::Messages) {
      out = anthropic_message({random_id("msg_"), model_.alias}, result);
    } else {
      const OpenAIResponseHead head{random_id(endpoint == Endpoint::ChatCompletions ? "chatcmpl-" : "cmpl-"), model_.alias,
                                    unix_now()};
      out = endpoint == Endpoint::ChatCompletions ? chat_completion(head, result) : text_completion(head, result);
    }
    if (request.server_python) {
      Json list = Json::array();
      for (const PythonRun& r : runs) list.push_back({{"code", r.code}, {"output", r.output}, {"exit_code", r.exit_code}});
      out["optiq_python_runs"] = list;  // what the server ran on the model's behalf
    }
    res.set_content(out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "application/json");
  } catch (const ApiError& e) {
    res.status = e.status();
    res.set_content(error_body(flavor_for_path(req.path), e), "application/json");
  } catch (const InputError& e) {
    res.status = 400;
    res.set_content(error_body(flavor_for_path(req.path), ApiError(400, e.what())), "application/json");
  } catch (const std::exception& e) {
    res.status = 500;
    res.set_content(error_body(flavor_for_path(req.path), ApiError(500, std::string("internal error: ") + e.what())),
                    "application/json");
  }
}

bool HttpServer::stream_generation(httplib::DataSink& sink, SlotLease& slot, const GenerationRequest& request,
                                   const std::vector<int32_t>& prompt, Endpoint endpoint) {
  // A failed write means the client is gone: generation stops at the next token.
  const auto write = [&](const std::string& s) { return sink.is_writable() && sink.write(s.data(), s.size()); };
  const bool anthropic = endpoint == Endpoint::Messages;
  const OpenAIResponseHead head{random_id(endpoint == Endpoint::ChatCompletions ? "chatcmpl-" : anthropic ? "msg_" : "cmpl-"),
                                model_.alias, unix_now()};
  const bool usage = request.include_usage;
  const bool chat = request.chat;
  try {
    bool ok = true;
    if (anthropic) {
      ok = write(anthropic_message_start({head.id, head.model}, static_cast<int64_t>(prompt.size()), slot.cached_tokens())) &&
           write(anthropic_ping());
    } else if (endpoint == Endpoint::ChatCompletions) {
      ok = write(openai_sse(chat_completion_chunk(head, {{"role", "assistant"}, {"content", ""}}, nullptr, usage)));
    }
    if (!ok) return false;

    // A chat's text is split as it grows (model_output.h): reasoning and answer text go out as
    // far as they are decided; what may be a tool call waits for the end.
    AnthropicContentStream blocks;
    std::string text;                              // the round's text so far
    size_t reasoning_sent = 0, content_sent = 0;  // bytes of each already written in this round
    bool any_reasoning = false, any_content = false;  // written in an earlier round (joined by blank lines)
    const auto send_parts = [&](const std::string& reasoning, const std::string& content,
                                std::span<const TokenLogprob> logprobs) {
      std::string r = reasoning.size() > reasoning_sent ? reasoning.substr(reasoning_sent) : "";
      std::string c = content.size() > content_sent ? content.substr(content_sent) : "";
      if (!r.empty() && reasoning_sent == 0 && any_reasoning) r = "\n\n" + r;
      if (!c.empty() && content_sent == 0 && any_content) c = "\n\n" + c;
      reasoning_sent = std::max(reasoning_sent, reasoning.size());
      content_sent = std::max(content_sent, content.size());
      if (anthropic) return write(blocks.thinking(r) + blocks.text(c));
      if (endpoint == Endpoint::Completions) return c.empty() || write(openai_sse(text_completion_chunk(head, c, nullptr, usage)));
      if (!r.empty() && !write(openai_sse(chat_completion_chunk(head, {{"reasoning_content", r}}, nullptr, usage)))) return false;
      if (c.empty() && logprobs.empty()) return true;
      Json chunk = chat_completion_chunk(head, {{"content", c}}, nullptr, usage);
      if (request.top_logprobs) chunk["choices"][0]["logprobs"] = openai_logprobs(logprobs);
      return write(openai_sse(chunk));
    };
    const auto on_text = [&](const std::string& piece, std::span<const TokenLogprob> logprobs) {
      text += piece;
      if (!chat) return send_parts("", text, logprobs);
      const StreamableOutput now = streamable_output(text, request.output_format);
      return send_parts(now.reasoning, now.content, logprobs);
    };
    const auto on_round_end = [&](const GenerationResult& round) {
      if (round.finish == FinishReason::Cancelled) return false;
      if (chat && !send_parts(round.output.reasoning, round.output.content, {})) return false;
      any_reasoning = any_reasoning || reasoning_sent > 0;
      any_content = any_content || content_sent > 0;
      text.clear();
      reasoning_sent = content_sent = 0;
      return true;
    };
    std::vector<PythonRun> runs;
    const GenerationResult result = run_rounds(slot, request, prompt, on_text, on_round_end, runs);
    note_result(result);
    if (result.finish == FinishReason::Cancelled) return false;

    if (anthropic) {
      std::string events;
      for (const ToolCall& call : result.output.calls) events += blocks.tool_use(call);
      return write(events + blocks.close()) && write(anthropic_message_delta(result)) && write(anthropic_message_stop());
    }
    const char* finish = openai_finish_reason(result.finish);
    if (endpoint == Endpoint::ChatCompletions) {
      for (const Json& delta : tool_call_deltas(result.output.calls))
        if (!write(openai_sse(chat_completion_chunk(head, delta, nullptr, usage)))) return false;
      ok = write(openai_sse(chat_completion_chunk(head, Json::object(), finish, usage))) &&
           (!usage || write(openai_sse(chat_completion_usage_chunk(head, result))));
    } else {
      ok = write(openai_sse(text_completion_chunk(head, "", finish, usage))) &&
           (!usage || write(openai_sse(text_completion_usage_chunk(head, result))));
    }
    return ok && write(kOpenAIStreamEnd);
  } catch (const std::exception& e) {
    // Headers (200) are out: the error goes into the stream, as each API reports one there.
    const ApiError err(500, std::string("internal error: ") + e.what());
    const std::string body = error_body(anthropic ? ApiFlavor::Anthropic : ApiFlavor::OpenAI, err);
    if (anthropic) return write(anthropic_stream_error(body));
    return write("data: " + body + "\n\n");
  } catch (...) {
    return false;
  }
}

GenerationResult HttpServer::run_rounds(SlotLease& slot, GenerationRequest request, std::vector<int32_t> prompt,
                                        const Generator::TextSink& on_text, const RoundEnd& on_round_end,
                                        std::vector<PythonRun>& runs) {
  GenerationResult total;
  for (int round = 0;; ++round) {
    GenerationResult r = generator_.generate(slot, request, prompt, on_text);
    const bool go_on = on_round_end(r);
    if (round == 0) {
      total.prompt_tokens = r.prompt_tokens;
      total.cached_tokens = r.cached_tokens;
      total.first_token_at = r.first_token_at;
    }
    total.completion_tokens += r.completion_tokens;
    if (r.completion_tokens) total.last_token_at = r.last_token_at;
    if (!total.first_token_at) total.first_token_at = r.first_token_at;
    const auto join = [](std::string& into, const std::string& more) {
      if (!more.empty()) into += (into.empty() ? "" : "\n\n") + more;
    };
    join(total.text, r.text);
    join(total.output.reasoning, r.output.reasoning);
    join(total.output.content, r.output.content);
    total.output.calls = r.output.calls;
    total.finish = r.finish;
    total.stop_sequence = r.stop_sequence;
    if (r.logprobs) {
      if (!total.logprobs) total.logprobs.emplace();
      total.logprobs->insert(total.logprobs->end(), r.logprobs->begin(), r.logprobs->end());
    }
    const bool python_only = !r.output.calls.empty() &&
                             std::all_of(r.output.calls.begin(), r.output.calls.end(),
                                         [](const ToolCall& c) { return c.name == kPythonToolName; });
    if (!go_on || !request.server_python || r.finish != FinishReason::ToolCalls || !python_only || round == kMaxPythonRounds)
      return total;

    Json calls = Json::array();
    std::vector<Json> results;
    for (const ToolCall& call : r.output.calls) {
      const std::string id = random_id("call_");
      calls.push_back({{"id", id}, {"type", "function"}, {"function", {{"name", call.name}, {"arguments", call.arguments.dump()}}}});
      runs.push_back(run_python_call(call, options_.python_limits));
      results.push_back({{"role", "tool"}, {"tool_call_id", id}, {"name", call.name}, {"content", runs.back().output}});
    }
    request.messages.push_back({{"role", "assistant"}, {"content", r.output.content.empty() ? Json(nullptr) : Json(r.output.content)},
                                {"tool_calls", calls}});
    for (Json& m : results) request.messages.push_back(std::move(m));
    request.constraint = nullptr;  // a forced call is the first round's only
    prompt = generator_.tokenize_prompt(request);
    generator_.reuse_prefix(slot, prompt);
    if (static_cast<int64_t>(prompt.size()) >= generator_.n_ctx()) {
      total.finish = FinishReason::Length;
      return total;
    }
    if (request.max_tokens) {
      request.max_tokens = *request.max_tokens - r.completion_tokens;
      if (*request.max_tokens < 1) return total;
    }
    if (request.max_tokens && static_cast<int64_t>(prompt.size()) + *request.max_tokens > generator_.n_ctx())
      request.max_tokens = generator_.n_ctx() - static_cast<int64_t>(prompt.size());
  }
}

}  // namespace optiq::serve
