#include <gtest/gtest.h>

#include <map>
#include <set>

#include "calib/mix.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq::calib {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

const char* const kShippedDomains[] = {"prose", "reasoning", "code", "agent", "tool_calling", "instructions"};

fs::path qwen25() { return test::shared_dir() / "models/qwen2.5-tokenizer"; }
fs::path templates_dir() { return test::shared_dir() / "models/templates"; }

const CalibrationMix& shipped_mix() {
  static const CalibrationMix mix = read_calibration_mix(resolve_calibration_mix("optiq"));
  return mix;
}

bool has_parallel_calls(const MixSample& s) {
  for (const ojson& m : s.messages)
    if (m.contains("tool_calls") && m["tool_calls"].size() > 1) return true;
  return false;
}

bool uses_tools(const MixSample& s) {
  if (!s.tools.is_null()) return true;
  for (const ojson& m : s.messages)
    if (m.contains("tool_calls") || m["role"] == "tool") return true;
  return false;
}

TEST(CalibMix, ShippedMixHasSixDomainsOfAtLeastEightSamples) {
  std::map<std::string, int> counts;
  for (const MixSample& s : shipped_mix().samples) counts[s.domain] += 1;
  EXPECT_EQ(counts.size(), 6u);
  for (const char* d : kShippedDomains) EXPECT_GE(counts[d], 8) << d;
  // The shapes each domain promises.
  for (const MixSample& s : shipped_mix().samples) {
    EXPECT_EQ(s.is_chat(), s.domain != "prose") << "line " << s.line;
    if (s.domain == "agent" || s.domain == "tool_calling") {
      EXPECT_TRUE(s.tools.is_array()) << "line " << s.line;
    }
    if (s.domain == "reasoning") {
      const std::string last = s.messages.back()["content"].get<std::string>();
      EXPECT_EQ(last.rfind("<think>\n", 0), 0u) << "line " << s.line;
    }
  }
  int parallel = 0, answered_without_call = 0;
  for (const MixSample& s : shipped_mix().samples) {
    if (s.domain != "tool_calling") continue;
    parallel += has_parallel_calls(s);
    for (size_t i = 1; i < s.messages.size(); ++i)
      if (s.messages[i - 1]["role"] == "user" && s.messages[i]["role"] == "assistant" &&
          !s.messages[i].contains("tool_calls"))
        ++answered_without_call;
  }
  EXPECT_GE(parallel, 3);
  EXPECT_GE(answered_without_call, 1);
}

TEST(CalibMix, ShippedMixHasAtLeast30KQwenTokensAndRendersNatively) {
  const Tokenizer tok = load_tokenizer(qwen25());
  const ChatTemplate tmpl = load_chat_template(qwen25());
  std::vector<std::string> warnings;
  const auto samples = tokenize_mix(shipped_mix(), tok, &tmpl, warnings);
  EXPECT_TRUE(warnings.empty()) << warnings.front();
  size_t total = 0;
  for (const auto& s : samples) {
    total += s.tokens.size();
    EXPECT_EQ(s.mode, s.domain == "prose" ? RenderMode::Text : RenderMode::Template) << "line " << s.line;
  }
  EXPECT_GE(total, 30000u);

  CalibrationOptions opt;
  const CalibrationSet set = select_sequences(samples, opt);
  size_t counted = 0;
  for (const DomainCount& d : set.domains) {
    counted += d.tokens;
    EXPECT_GE(d.sequences, 3u) << d.domain;
    EXPECT_GE(d.held_out, 1u) << d.domain;
    EXPECT_EQ(d.calibration + d.held_out, d.sequences) << d.domain;
  }
  EXPECT_EQ(counted, total);
}

// Every template in ../shared renders every sample (simplified where it must); those that read
// tools and tool_calls take the tool samples as written.
TEST(CalibMix, ShippedMixRendersThroughEverySharedTemplate) {
  const CalibrationMix& mix = shipped_mix();
  size_t n_templates = 0;
  for (const auto& entry : fs::directory_iterator(templates_dir())) {
    if (!entry.is_directory()) continue;
    const std::string name = entry.path().filename().string();
    const ChatTemplate tmpl = load_chat_template(entry.path());
    ++n_templates;
    const bool reads_tools = name == "qwen3" || name == "llama-3.2-instruct";
    for (const MixSample& s : mix.samples) {
      RenderMode mode = RenderMode::Text;
      std::string text;
      ASSERT_NO_THROW(text = render_sample(s, &tmpl, mix.origin, &mode)) << name << " line " << s.line;
      EXPECT_FALSE(text.empty()) << name << " line " << s.line;
      if (!s.is_chat()) continue;
      if (reads_tools && !(name == "llama-3.2-instruct" && has_parallel_calls(s))) {
        EXPECT_EQ(mode, RenderMode::Template) << name << " line " << s.line;
      }
      if (!uses_tools(s) && name != "mistral-7b-instruct-v0.3") {  // Mistral v0.3 has no system role
        EXPECT_EQ(mode, RenderMode::Template) << name << " line " << s.line;
      }
      if (mode != RenderMode::Template && mode != RenderMode::StringArguments) {
        // The simplified forms keep the tool calls as text.
        for (const ojson& m : s.messages) {
          if (!m.contains("tool_calls")) continue;
          EXPECT_NE(text.find(m["tool_calls"][0]["function"]["name"].get<std::string>()), std::string::npos)
              << name << " line " << s.line;
        }
      }
    }
  }
  EXPECT_GE(n_templates, 7u);
}

struct BadMix {
  std::string jsonl;
  size_t line;
  std::string message;
};

TEST(CalibMix, BadMixesNameTheLine) {
  const std::string ok = R"({"domain": "prose", "text": "fine"})";
  const std::vector<BadMix> cases = {
      {ok + "\n{\"domain\": \"prose\", \"text\": \"x\"\n", 2, "invalid JSON"},
      {ok + "\n\n[1, 2]\n", 3, "expected a JSON object"},
      {ok + "\n" + R"({"text": "no domain"})", 2, "missing \"domain\""},
      {R"({"domain": 3, "text": "x"})", 1, "\"domain\" must be a non-empty string"},
      {ok + "\n" + ok + "\n" + R"({"domain": "a", "text": "x", "messages": []})", 3, "exactly one of"},
      {R"({"domain": "a"})", 1, "exactly one of"},
      {ok + "\n" + R"({"domain": "a", "messages": {"role": "user"}})", 2, "must be an array"},
      {ok + "\n" + R"({"domain": "a", "messages": [{"content": "hi"}]})", 2, "needs a string \"role\""},
      {ok + "\n" + R"({"domain": "a", "messages": [{"role": "user"}]})", 2, "needs \"content\""},
      {ok + "\n" + R"({"domain": "a", "messages": [{"role": "robot", "content": "x"}]})", 2, "unknown role"},
      {ok + "\n" + R"({"domain": "a", "messages": [{"role": "user", "content": 5}]})", 2, "must be a string"},
      {ok + "\n" + R"({"domain": "a", "messages": [{"role": "user", "content": "x"}], "tools": {}})", 2,
       "\"tools\" must be an array"},
      {ok + "\n" + R"({"domain": "a", "text": "x", "tools": []})", 2, "belongs to chat samples"},
      {ok + "\n" + R"({"domain": "a", "mesages": []})", 2, "unknown key \"mesages\""},
      {ok + "\n" + R"({"domain": "a", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"function": {"arguments": {}}}]}]})",
       2, "non-empty string \"name\""},
      {"\n\n", 0, "has no samples"},
  };
  for (const BadMix& c : cases) {
    try {
      parse_calibration_mix(c.jsonl, "mix.jsonl");
      ADD_FAILURE() << "no error for: " << c.jsonl;
    } catch (const InputError& e) {
      const std::string what = e.what();
      if (c.line) {
        EXPECT_NE(what.find("mix.jsonl: line " + std::to_string(c.line) + ": "), std::string::npos) << what;
      }
      EXPECT_NE(what.find(c.message), std::string::npos) << what;
    }
  }
}

TEST(CalibMix, TemplateErrorNamesTheLine) {
  ChatTemplate tmpl;
  tmpl.origin = "strict.jinja";
  tmpl.templates = {{"default", "{{ raise_exception('no thanks') }}"}};
  const CalibrationMix mix = parse_calibration_mix(
      "{\"domain\": \"p\", \"text\": \"a\"}\n{\"domain\": \"c\", \"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n",
      "m.jsonl");
  try {
    render_sample(mix.samples[1], &tmpl, mix.origin, nullptr);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("m.jsonl: line 2: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no thanks"), std::string::npos) << e.what();
  }
}

std::vector<TokenizedSample> synthetic(const std::vector<std::pair<std::string, size_t>>& domain_tokens) {
  std::vector<TokenizedSample> out;
  int32_t next = 0;
  for (const auto& [domain, n] : domain_tokens) {
    TokenizedSample s;
    s.domain = domain;
    for (size_t i = 0; i < n; ++i) s.tokens.push_back(next++);
    out.push_back(s);
  }
  return out;
}

TEST(CalibMix, SelectionIsDeterministicBalancedAndDisjoint) {
  // Domain a: 40 + 2 tokens (10 sequences of 4, tail dropped), b: 20 (5), c: 12 (3), d: 3 (none).
  const auto samples = synthetic({{"a", 40}, {"b", 12}, {"c", 12}, {"b", 8}, {"a", 2}, {"d", 3}});
  CalibrationOptions opt;
  opt.seq_len = 4;
  opt.n_calibration = 6;
  const CalibrationSet set = select_sequences(samples, opt);
  ASSERT_EQ(set.domains.size(), 4u);
  EXPECT_EQ(set.domains[0].sequences, 10u);
  EXPECT_EQ(set.domains[1].sequences, 5u);
  EXPECT_EQ(set.domains[2].sequences, 3u);
  EXPECT_EQ(set.domains[3].sequences, 0u);
  EXPECT_EQ(set.domains[1].tokens, 20u);
  // Held out: round(0.1 n), at least one where a domain has two or more.
  EXPECT_EQ(set.domains[0].held_out, 1u);
  EXPECT_EQ(set.domains[1].held_out, 1u);
  EXPECT_EQ(set.domains[2].held_out, 1u);
  EXPECT_EQ(set.held_out.size(), 3u);
  // Round-robin: a, b, c, a, b, c.
  ASSERT_EQ(set.calibration.size(), 6u);
  const char* order[] = {"a", "b", "c", "a", "b", "c"};
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(set.calibration[i].domain, order[i]) << i;
  for (const auto& seq : set.calibration) EXPECT_EQ(seq.tokens.size(), 4u);
  // Domain b's stream is its two samples in file order: tokens 40..51 then 64..71.
  EXPECT_EQ(set.calibration[1].tokens, (std::vector<int32_t>{40, 41, 42, 43}));
  // Disjoint, and no token shared between the two sets.
  std::set<int32_t> held_tokens;
  for (const auto& seq : set.held_out) held_tokens.insert(seq.tokens.begin(), seq.tokens.end());
  for (const auto& seq : set.calibration)
    for (int32_t t : seq.tokens) EXPECT_EQ(held_tokens.count(t), 0u) << t;
  EXPECT_FALSE(set.warnings.empty());  // domain d is too short

  const CalibrationSet again = select_sequences(samples, opt);
  ASSERT_EQ(again.calibration.size(), set.calibration.size());
  for (size_t i = 0; i < set.calibration.size(); ++i) EXPECT_EQ(again.calibration[i].tokens, set.calibration[i].tokens);

  // All (n_calibration 0): every sequence is in exactly one set.
  opt.n_calibration = 0;
  const CalibrationSet all = select_sequences(samples, opt);
  EXPECT_EQ(all.calibration.size() + all.held_out.size(), 18u);
  // Asking for more than there is takes everything, with a warning.
  opt.n_calibration = 100;
  const CalibrationSet capped = select_sequences(samples, opt);
  EXPECT_EQ(capped.calibration.size(), 15u);
  // No held-out set when the fraction is 0.
  opt.held_out_fraction = 0;
  EXPECT_TRUE(select_sequences(samples, opt).held_out.empty());
}

TEST(CalibMix, HeldOutIsEvenlySpaced) {
  const auto samples = synthetic({{"a", 400}});
  CalibrationOptions opt;
  opt.seq_len = 4;
  opt.held_out_fraction = 0.1;
  const CalibrationSet set = select_sequences(samples, opt);
  ASSERT_EQ(set.held_out.size(), 10u);
  for (size_t j = 0; j < 10; ++j) EXPECT_EQ(set.held_out[j].index, 10 * j + 5);
}

TEST(CalibMix, FallbackFormatWithoutTemplate) {
  const CalibrationMix mix = parse_calibration_mix(
      R"({"domain": "t", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather?"}, )"
      R"({"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": {"city": "Oslo"}}}]}, )"
      R"({"role": "tool", "content": "5 C"}, {"role": "assistant", "content": "It is 5 C."}], "tools": [{"type": "function"}]})",
      "m.jsonl");
  RenderMode mode = RenderMode::Text;
  const std::string text = render_sample(mix.samples[0], nullptr, mix.origin, &mode);
  EXPECT_EQ(mode, RenderMode::Fallback);
  EXPECT_EQ(text,
            "Tools:\n{\"type\":\"function\"}\n\nSystem: Be brief.\n\nUser: Weather?\n\n"
            "Assistant: <tool_call>\n{\"name\": \"w\", \"arguments\": {\"city\":\"Oslo\"}}\n</tool_call>\n\n"
            "Tool: 5 C\n\nAssistant: It is 5 C.");
}

TEST(CalibMix, ModelWithoutTemplateUsesFallbackWithWarning) {
  CalibrationOptions opt;
  opt.seq_len = 64;
  const CalibrationSet set = build_calibration_set(shipped_mix(), test::stories260k(), opt);
  ASSERT_FALSE(set.warnings.empty());
  EXPECT_NE(set.warnings[0].find("no chat template"), std::string::npos) << set.warnings[0];
  EXPECT_GT(set.calibration.size(), 100u);
}

TEST(CalibMix, BosIsNotDoubledWhenTheTemplateWritesIt) {
  const Tokenizer tok = load_tokenizer(test::stories260k());
  ASSERT_TRUE(tok.add_bos);
  ChatTemplate tmpl;
  tmpl.origin = "bos.jinja";
  tmpl.templates = {{"default", "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}"}};
  tmpl.special_tokens = {{"bos_token", "<s>"}};
  const CalibrationMix mix = parse_calibration_mix(
      "{\"domain\": \"c\", \"messages\": [{\"role\": \"user\", \"content\": \"Once upon a time\"}]}\n"
      "{\"domain\": \"p\", \"text\": \"Once upon a time\"}\n",
      "m.jsonl");
  std::vector<std::string> warnings;
  const auto samples = tokenize_mix(mix, tok, &tmpl, warnings);
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].tokens, samples[1].tokens);  // one BOS each, the same text after it
  EXPECT_EQ(samples[0].tokens[0], tok.bos);
  EXPECT_NE(samples[0].tokens[1], tok.bos);
}

TEST(CalibMix, CliPrintsCountsAndSamples) {
  auto r = test::run_optiq("calib-mix " + qwen25().string() + " --seq-len 256 --n-calibration 12 --show 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* d : kShippedDomains) EXPECT_NE(r.output.find(d), std::string::npos) << d;
  EXPECT_NE(r.output.find("calibration 12 x 256 = 3072 tokens"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--- sample 2: line 2, prose"), std::string::npos) << r.output;

  test::ScratchDir dir;
  test::write_text(dir / "bad.jsonl", "{\"domain\": \"a\", \"text\": \"x\"}\n{\"domain\": \"a\"}\n");
  auto bad = test::run_optiq("calib-mix " + qwen25().string() + " --calibration-mix " + (dir / "bad.jsonl").string());
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("bad.jsonl: line 2: "), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace optiq::calib
