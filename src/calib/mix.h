// The calibration mix: JSONL samples (raw text or OpenAI-style chats with tools) that optiq
// turns into fixed-length token sequences for a target model, rendering chats through that
// model's own chat template and tokenizing with its tokenizer. The default mix ships as
// data/calibration/optiq-mix.jsonl (installed to share/optiq/).
//
// One sample per line, either {"domain": D, "text": T} or
// {"domain": D, "messages": [...], "tools": [...]} (tools optional). Domain names are free.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/chat_template.h"
#include "model/tokenizer.h"

namespace optiq::calib {

struct MixSample {
  std::string domain;  // free-form group name ("prose", "code", ...)
  size_t line = 0;     // 1-based line of the sample in its file
  std::string text;    // raw text; empty for a chat sample
  nlohmann::ordered_json messages;  // chat: array of OpenAI messages; null for raw text
  nlohmann::ordered_json tools;     // array of OpenAI tool schemas; null when absent

  bool is_chat() const { return !messages.is_null(); }
};

struct CalibrationMix {
  std::string origin;              // the file, for error messages
  std::vector<MixSample> samples;  // in file order
};

// "optiq" names the shipped mix, found in the first of: <exe dir>/../share/optiq/,
// <exe dir>/../data/calibration/, <source tree>/data/calibration/. Anything else is a path to
// a .jsonl file. Throws InputError when the file does not exist.
std::filesystem::path resolve_calibration_mix(const std::string& name_or_path);

// Parses and validates the JSONL text; errors name `origin` and the line.
CalibrationMix parse_calibration_mix(std::string_view jsonl, const std::string& origin);
CalibrationMix read_calibration_mix(const std::filesystem::path& path);

// How a chat sample reached text. Templates that reject a sample (strict role alternation, no
// system role, one tool call per turn, string-only arguments) get a simpler form of it.
enum class RenderMode {
  Text,             // raw text sample, not rendered
  Template,         // through the chat template as written
  StringArguments,  // tool-call arguments serialized to JSON strings
  Flattened,        // tool calls and results as text in assistant/user turns
  FlattenedNoSystem,  // flattened, system (and tools) merged into the first user turn
  Fallback,         // no chat template: optiq's plain "Role: content" format
};
const char* render_mode_name(RenderMode mode);

// Renders one sample: raw text as it is; chats through `tmpl` (nullptr: the fallback format),
// trying the RenderMode forms in order and keeping the first the template accepts. Throws
// InputError naming `origin` and the sample's line when no form renders.
std::string render_sample(const MixSample& sample, const ChatTemplate* tmpl,
                          const std::string& origin, RenderMode* mode);

// The fallback format for models without a chat template: blocks separated by a blank line,
// "Tools:" with one JSON schema per line, then "System: ", "User: ", "Assistant: " and
// "Tool: " followed by the content; a tool call is written after the assistant's text as
// <tool_call>{"name": ..., "arguments": ...}</tool_call>.
std::string render_fallback(const nlohmann::ordered_json& messages,
                            const nlohmann::ordered_json& tools);

struct TokenizedSample {
  std::string domain;           // the sample's domain
  size_t line = 0;              // the sample's line in the mix
  RenderMode mode = RenderMode::Text;
  std::string rendered;         // the text that was tokenized
  std::vector<int32_t> tokens;  // [n_tokens], BOS first when the vocabulary adds one
};

// Renders and tokenizes every sample. Chat text is tokenized with special tokens parsed, raw
// text without; BOS is added as the vocabulary asks, and not twice when the template already
// wrote it. Adds a line to `warnings` for each kind of simplified rendering used, and one when
// chat samples meet no template (tmpl == nullptr).
std::vector<TokenizedSample> tokenize_mix(const CalibrationMix& mix, const Tokenizer& tokenizer,
                                          const ChatTemplate* tmpl,
                                          std::vector<std::string>& warnings);

struct CalibrationOptions {
  size_t seq_len = 512;             // tokens per sequence
  size_t n_calibration = 0;         // sequences to select; 0: all that are not held out
  double held_out_fraction = 0.1;   // share of each domain's sequences kept for held-out use
};

struct CalibSequence {
  std::string domain;           // the domain whose token stream it was cut from
  size_t index = 0;             // its position among that domain's sequences
  std::vector<int32_t> tokens;  // [seq_len]
};

struct DomainCount {
  std::string domain;
  size_t samples = 0;      // samples in the mix
  size_t tokens = 0;       // tokens after rendering and tokenizing
  size_t sequences = 0;    // whole seq_len sequences cut from them (the tail is dropped)
  size_t calibration = 0;  // of those, selected for calibration
  size_t held_out = 0;     // of those, held out
};

struct CalibrationSet {
  std::vector<CalibSequence> calibration;  // round-robin over domains: every prefix is balanced
  std::vector<CalibSequence> held_out;     // disjoint from calibration
  std::vector<DomainCount> domains;        // in order of first appearance in the mix
  std::vector<std::string> warnings;       // for the user (simplified renders, short domains)
};

// Cuts each domain's samples, concatenated in file order, into seq_len sequences; holds out
// round(fraction × n) evenly spaced sequences of each domain (at least one when it has two or
// more and the fraction is positive); then deals the rest round-robin over domains until
// n_calibration are taken. Deterministic: the same mix and tokenizer give the same sets.
CalibrationSet select_sequences(const std::vector<TokenizedSample>& samples,
                                const CalibrationOptions& options);

// The model's chat template (.gguf or Hugging Face folder, as load_chat_template finds it), or
// nullopt when it has none; a template that is there but broken is still an InputError.
std::optional<ChatTemplate> find_chat_template(const std::filesystem::path& model);

// The whole pipeline for a model (.gguf or Hugging Face folder): its tokenizer, its chat
// template (none: the fallback format, with a warning), tokenize_mix and select_sequences.
CalibrationSet build_calibration_set(const CalibrationMix& mix, const std::filesystem::path& model,
                                     const CalibrationOptions& options);

}  // namespace optiq::calib
