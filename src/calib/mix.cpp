// Reading a calibration mix: where the shipped one lives, and JSONL parsing with line-numbered
// errors for every shape problem, so a hand-written mix fails at the line to fix.
#include "calib/mix.h"

#include <fstream>
#include <sstream>

#include "util/error.h"

#ifndef OPTIQ_SOURCE_DIR
#define OPTIQ_SOURCE_DIR ""
#endif

namespace optiq::calib {
namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace {

constexpr const char* kShippedMixName = "optiq";
constexpr const char* kShippedMixFile = "optiq-mix.jsonl";

fs::path executable_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

std::vector<fs::path> shipped_mix_candidates() {
  std::vector<fs::path> out;
  if (const fs::path dir = executable_dir(); !dir.empty()) {
    out.push_back(dir / ".." / "share" / "optiq" / kShippedMixFile);
    out.push_back(dir / ".." / "data" / "calibration" / kShippedMixFile);
  }
  if (std::string_view(OPTIQ_SOURCE_DIR).size() > 0)
    out.push_back(fs::path(OPTIQ_SOURCE_DIR) / "data" / "calibration" / kShippedMixFile);
  return out;
}

class LineChecker {
 public:
  LineChecker(const std::string& origin, size_t line) : origin_(origin), line_(line) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw InputError(origin_, std::nullopt, "line " + std::to_string(line_) + ": " + what);
  }

  void check_tool_call(const ojson& call, size_t msg, size_t k) const {
    const std::string where = "messages[" + std::to_string(msg) + "].tool_calls[" + std::to_string(k) + "]";
    if (!call.is_object()) fail(where + " is not an object");
    if (!call.contains("function") || !call["function"].is_object())
      fail(where + " needs a \"function\" object");
    const ojson& fn = call["function"];
    if (!fn.contains("name") || !fn["name"].is_string() || fn["name"].get<std::string>().empty())
      fail(where + ".function needs a non-empty string \"name\"");
    if (!fn.contains("arguments") || !(fn["arguments"].is_object() || fn["arguments"].is_string()))
      fail(where + ".function needs \"arguments\" (an object or a JSON string)");
  }

  void check_messages(const ojson& messages) const {
    if (!messages.is_array()) fail("\"messages\" must be an array of {\"role\", \"content\"} objects");
    if (messages.empty()) fail("\"messages\" is empty");
    for (size_t i = 0; i < messages.size(); ++i) {
      const ojson& m = messages[i];
      const std::string where = "messages[" + std::to_string(i) + "]";
      if (!m.is_object()) fail(where + " is not an object with \"role\" and \"content\"");
      if (!m.contains("role") || !m["role"].is_string()) fail(where + " needs a string \"role\"");
      const std::string role = m["role"].get<std::string>();
      if (role != "system" && role != "user" && role != "assistant" && role != "tool")
        fail(where + ": unknown role \"" + role + "\" (expected system, user, assistant or tool)");
      const bool has_calls = m.contains("tool_calls");
      if (has_calls) {
        if (role != "assistant") fail(where + ": only assistant messages have \"tool_calls\"");
        if (!m["tool_calls"].is_array() || m["tool_calls"].empty())
          fail(where + ".tool_calls must be a non-empty array");
        for (size_t k = 0; k < m["tool_calls"].size(); ++k) check_tool_call(m["tool_calls"][k], i, k);
      }
      if (!m.contains("content")) fail(where + " needs \"content\"");
      const ojson& content = m["content"];
      if (content.is_null() && !has_calls)
        fail(where + ": \"content\" may be null only in an assistant message with tool_calls");
      if (!content.is_null() && !content.is_string()) fail(where + ": \"content\" must be a string");
    }
  }

 private:
  const std::string& origin_;
  size_t line_;
};

MixSample parse_line(std::string_view line_text, const std::string& origin, size_t line) {
  const LineChecker check(origin, line);
  ojson j;
  try {
    j = ojson::parse(line_text);
  } catch (const nlohmann::json::exception& e) {
    check.fail(std::string("invalid JSON: ") + e.what());
  }
  if (!j.is_object()) check.fail("expected a JSON object");
  for (const auto& [key, _] : j.items())
    if (key != "domain" && key != "text" && key != "messages" && key != "tools")
      check.fail("unknown key \"" + key + "\" (expected domain, text, messages, tools)");

  MixSample s;
  s.line = line;
  if (!j.contains("domain")) check.fail("missing \"domain\"");
  if (!j["domain"].is_string() || j["domain"].get<std::string>().empty())
    check.fail("\"domain\" must be a non-empty string");
  s.domain = j["domain"].get<std::string>();

  const bool has_text = j.contains("text"), has_messages = j.contains("messages");
  if (has_text == has_messages) check.fail("give exactly one of \"text\" and \"messages\"");
  if (has_text) {
    if (!j["text"].is_string() || j["text"].get<std::string>().empty())
      check.fail("\"text\" must be a non-empty string");
    if (j.contains("tools")) check.fail("\"tools\" belongs to chat samples (with \"messages\")");
    s.text = j["text"].get<std::string>();
    return s;
  }
  check.check_messages(j["messages"]);
  s.messages = std::move(j["messages"]);
  if (j.contains("tools")) {
    if (!j["tools"].is_array()) check.fail("\"tools\" must be an array of tool schemas");
    for (size_t k = 0; k < j["tools"].size(); ++k)
      if (!j["tools"][k].is_object()) check.fail("tools[" + std::to_string(k) + "] is not an object");
    s.tools = std::move(j["tools"]);
  }
  return s;
}

}  // namespace

fs::path resolve_calibration_mix(const std::string& name_or_path) {
  if (name_or_path == kShippedMixName) {
    const auto candidates = shipped_mix_candidates();
    for (const fs::path& p : candidates)
      if (fs::is_regular_file(p)) return p.lexically_normal();
    std::string looked;
    for (const fs::path& p : candidates) looked += (looked.empty() ? "" : ", ") + p.lexically_normal().string();
    throw InputError("--calibration-mix optiq", std::nullopt,
                     "the shipped calibration mix is not installed (looked in: " + looked + ")");
  }
  if (!fs::is_regular_file(name_or_path))
    throw InputError(name_or_path, std::nullopt, "no such calibration mix file");
  return name_or_path;
}

CalibrationMix parse_calibration_mix(std::string_view jsonl, const std::string& origin) {
  CalibrationMix mix;
  mix.origin = origin;
  size_t line = 0, pos = 0;
  while (pos < jsonl.size()) {
    ++line;
    size_t end = jsonl.find('\n', pos);
    if (end == std::string_view::npos) end = jsonl.size();
    std::string_view text = jsonl.substr(pos, end - pos);
    pos = end + 1;
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    if (text.find_first_not_of(" \t") == std::string_view::npos) continue;
    mix.samples.push_back(parse_line(text, origin, line));
  }
  if (mix.samples.empty()) throw InputError(origin, std::nullopt, "the calibration mix has no samples");
  return mix;
}

CalibrationMix read_calibration_mix(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path.string(), std::nullopt, "cannot open the calibration mix");
  std::ostringstream text;
  text << in.rdbuf();
  return parse_calibration_mix(text.str(), path.string());
}

}  // namespace optiq::calib
