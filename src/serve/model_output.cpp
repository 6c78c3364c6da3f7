#include "serve/model_output.h"

#include <algorithm>
#include <optional>

#include "util/trim.h"

namespace optiq::serve {
namespace {

using Json = nlohmann::ordered_json;

constexpr std::string_view kThinkOpen = "<think>", kThinkClose = "</think>";
constexpr std::string_view kHermesOpen = "<tool_call>", kHermesClose = "</tool_call>";
constexpr std::string_view kPhiOpen = "<|tool_call|>", kPhiClose = "<|/tool_call|>";
constexpr std::string_view kMistral = "[TOOL_CALLS]";
constexpr std::string_view kDeepSeekCalls = "<｜tool▁calls▁begin｜>", kDeepSeekCall = "<｜tool▁call▁begin｜>",
                           kDeepSeekSep = "<｜tool▁sep｜>", kDeepSeekCallEnd = "<｜tool▁call▁end｜>";
constexpr std::string_view kMarkers[] = {kHermesOpen, kPhiOpen, kMistral, kDeepSeekCalls};

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// How many of s's last bytes are a proper prefix of `word`: text that may become `word`.
size_t partial_suffix(std::string_view s, std::string_view word) {
  for (size_t n = std::min(s.size(), word.size() - 1); n > 0; --n)
    if (s.substr(s.size() - n) == word.substr(0, n)) return n;
  return 0;
}

struct Split {
  std::string_view reasoning, rest;
  bool open = false;  // no </think> yet
};

Split split_reasoning(std::string_view text, const OutputFormat& format) {
  if (!format.split_reasoning) return {{}, text, false};
  std::string_view body;
  if (format.reasoning_open) {
    body = text;
  } else if (starts_with(trim_left(text), kThinkOpen)) {
    body = trim_left(text).substr(kThinkOpen.size());
  } else {
    return {{}, text, false};
  }
  const size_t close = body.find(kThinkClose);
  if (close == std::string_view::npos) return {body, {}, true};
  return {body.substr(0, close), body.substr(close + kThinkClose.size()), false};
}

// {"name", "arguments" | "parameters"} with an object (or a JSON string of one) for arguments,
// and a name among `names`.
std::optional<ToolCall> json_call(const Json& j, const std::vector<std::string>& names) {
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string()) return std::nullopt;
  const std::string name = j["name"].get<std::string>();
  if (std::find(names.begin(), names.end(), name) == names.end()) return std::nullopt;
  Json args = j.contains("arguments") ? j["arguments"] : j.contains("parameters") ? j["parameters"] : Json::object();
  if (args.is_string()) args = Json::parse(args.get<std::string>(), nullptr, /*allow_exceptions=*/false);
  if (!args.is_object()) return std::nullopt;
  return ToolCall{name, std::move(args)};
}

// One JSON object or a list of them, each a call; nullopt when any is not.
std::optional<std::vector<ToolCall>> json_calls(std::string_view text, const std::vector<std::string>& names) {
  const Json j = Json::parse(trim(text), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  std::vector<ToolCall> calls;
  for (const Json& item : j.is_array() ? j : Json::array({j})) {
    auto call = json_call(item, names);
    if (!call) return std::nullopt;
    calls.push_back(std::move(*call));
  }
  if (calls.empty()) return std::nullopt;
  return calls;
}

// Calls between `open` and `close` tags, repeated; a last one may lack its close (the model
// ended its turn there). `trailing`: text after the last call.
std::optional<std::vector<ToolCall>> tagged_calls(std::string_view region, std::string_view open, std::string_view close,
                                                  const std::vector<std::string>& names, std::string_view& trailing) {
  std::vector<ToolCall> calls;
  region = trim_left(region);
  while (starts_with(region, open)) {
    region.remove_prefix(open.size());
    const size_t end = region.find(close);
    auto some = json_calls(region.substr(0, end), names);
    if (!some) return std::nullopt;
    calls.insert(calls.end(), some->begin(), some->end());
    region = end == std::string_view::npos ? std::string_view{} : trim_left(region.substr(end + close.size()));
  }
  trailing = region;
  return calls;
}

// DeepSeek's: <｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>.
std::optional<std::vector<ToolCall>> deepseek_calls(std::string_view region, const std::vector<std::string>& names) {
  std::vector<ToolCall> calls;
  for (size_t at = region.find(kDeepSeekCall); at != std::string_view::npos; at = region.find(kDeepSeekCall)) {
    region.remove_prefix(at + kDeepSeekCall.size());
    const size_t sep = region.find(kDeepSeekSep);
    if (sep == std::string_view::npos) return std::nullopt;
    std::string_view rest = region.substr(sep + kDeepSeekSep.size());
    const size_t newline = rest.find('\n');
    if (newline == std::string_view::npos) return std::nullopt;
    const std::string name(trim(rest.substr(0, newline)));
    rest.remove_prefix(newline + 1);
    const size_t end = rest.find(kDeepSeekCallEnd);
    std::string_view args = trim(rest.substr(0, end));
    if (starts_with(args, "```json")) args.remove_prefix(7);
    if (args.size() >= 3 && args.substr(args.size() - 3) == "```") args.remove_suffix(3);
    auto call = json_call(Json{{"name", name}, {"arguments", Json::parse(trim(args), nullptr, false)}}, names);
    if (!call) return std::nullopt;
    calls.push_back(std::move(*call));
    region = end == std::string_view::npos ? std::string_view{} : rest.substr(end);
  }
  if (calls.empty()) return std::nullopt;
  return calls;
}

// The first tool-call marker in `text`, or npos.
std::pair<size_t, std::string_view> first_marker(std::string_view text) {
  std::pair<size_t, std::string_view> best{std::string_view::npos, {}};
  for (const std::string_view m : kMarkers)
    if (const size_t at = text.find(m); at < best.first) best = {at, m};
  return best;
}

}  // namespace

ModelOutput parse_model_output(std::string_view text, const OutputFormat& format) {
  const Split split = split_reasoning(text, format);
  ModelOutput out;
  out.reasoning = std::string(trim(split.reasoning));
  const bool reasoned = split.rest.data() != text.data() || split.open;  // something was split off
  std::string_view rest = split.rest;
  out.content = std::string(reasoned ? trim(rest) : rest);
  if (format.tool_names.empty()) return out;

  const auto& names = format.tool_names;
  const auto [at, marker] = first_marker(rest);
  std::optional<std::vector<ToolCall>> calls;
  std::string_view before = rest, after;
  if (at != std::string_view::npos) {
    before = rest.substr(0, at);
    const std::string_view region = rest.substr(at);
    if (marker == kHermesOpen) {
      calls = tagged_calls(region, kHermesOpen, kHermesClose, names, after);
    } else if (marker == kPhiOpen) {
      calls = tagged_calls(region, kPhiOpen, kPhiClose, names, after);
    } else if (marker == kMistral) {
      calls = json_calls(region.substr(kMistral.size()), names);
    } else {
      calls = deepseek_calls(region, names);
    }
  } else if (const std::string_view t = trim(rest); starts_with(t, "{") || starts_with(t, "[")) {
    before = {};
    calls = json_calls(t, names);  // Llama 3's bare call is the whole answer
  }
  if (!calls || calls->empty()) return out;
  out.calls = std::move(*calls);
  out.content = std::string(trim(before));
  if (!trim(after).empty()) out.content += (out.content.empty() ? "" : "\n") + std::string(trim(after));
  return out;
}

StreamableOutput streamable_output(std::string_view text, const OutputFormat& format) {
  StreamableOutput out;
  if (format.split_reasoning && !format.reasoning_open) {
    const std::string_view t = trim_left(text);
    if (!t.empty() && t.size() < kThinkOpen.size() && starts_with(kThinkOpen, t)) return out;  // maybe "<think>"
  }
  const Split split = split_reasoning(text, format);
  const bool reasoned = split.rest.data() != text.data() || split.open;
  if (reasoned) {
    std::string_view r = trim_left(split.reasoning);
    if (split.open) r.remove_suffix(partial_suffix(r, kThinkClose));
    out.reasoning = std::string(trim_right(r));  // trailing space waits: the end trims it
    if (split.open) return out;
  }
  std::string_view rest = reasoned ? trim_left(split.rest) : split.rest;
  if (!format.tool_names.empty()) {
    if (const std::string_view t = trim_left(rest); starts_with(t, "{") || starts_with(t, "[")) return out;
    if (const size_t at = first_marker(rest).first; at != std::string_view::npos) rest = rest.substr(0, at);
    size_t hold = 0;
    for (const std::string_view m : kMarkers) hold = std::max(hold, partial_suffix(rest, m));
    rest.remove_suffix(hold);
    rest = trim_right(rest);  // a call may follow, and the end trims the text before one
  } else if (reasoned) {
    rest = trim_right(rest);  // the end trims the answer after reasoning
  }
  out.content = std::string(rest);
  return out;
}

std::shared_ptr<const constrain::JsonConstraint> forced_tool_call(const Json& tools, const std::string& only) {
  Json alternatives = Json::array();
  Json defs = Json::object();  // section ("$defs", "definitions") -> name -> schema
  for (const Json& tool : tools) {
    const Json& fn = tool.contains("function") ? tool["function"] : tool;
    const std::string name = fn.value("name", "");
    if (!only.empty() && name != only) continue;
    Json params = fn.contains("parameters") && fn["parameters"].is_object() ? fn["parameters"] : Json{{"type", "object"}};
    // $refs point at the parameters' own $defs; they move to the top of the combined schema.
    for (const char* section : {"$defs", "definitions"}) {
      if (!params.contains(section) || !params[section].is_object()) continue;
      for (const auto& [k, v] : params[section].items()) defs[section][k] = v;
      params.erase(section);
    }
    alternatives.push_back({{"type", "object"},
                            {"properties", {{"name", {{"const", name}}}, {"arguments", params}}},
                            {"required", {"name", "arguments"}},
                            {"additionalProperties", false}});
  }
  Json schema = {{"anyOf", alternatives}};
  for (const auto& [section, named] : defs.items()) schema[section] = named;
  return std::make_shared<const constrain::JsonConstraint>(
      schema, std::string(kHermesOpen) + "\n", "\n" + std::string(kHermesClose));
}

}  // namespace optiq::serve
