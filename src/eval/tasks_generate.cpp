// Tasks scored on generated text: gsm8k, humaneval, ifeval, bfcl.
#include <filesystem>
#include <map>

#include "eval/bfcl.h"
#include "eval/gsm8k.h"
#include "eval/humaneval.h"
#include "eval/ifeval.h"
#include "eval/jsonl.h"
#include "eval/task_util.h"
#include "eval/tasks.h"
#include "util/error.h"
#include "util/json_file.h"

namespace optiq::eval {
namespace {

std::vector<gsm8k::Problem> load_gsm8k(const std::string& path) {
  std::vector<gsm8k::Problem> out;
  for (const JsonlRecord& r : read_jsonl(path))
    out.push_back({string_field(r, path, "question"), string_field(r, path, "answer")});
  return out;
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return std::filesystem::equivalent(a, b, ec);
}

}  // namespace

TaskResult run_gsm8k(const EvalModel& m, const TaskOptions& o) {
  TaskResult r;
  r.task = "gsm8k";
  r.primary = "exact_match_flexible";
  const std::string train_path = o.train.empty() ? o.data : o.train;
  std::vector<gsm8k::Problem> test = load_gsm8k(o.data);
  const std::vector<gsm8k::Problem> train = same_file(train_path, o.data) ? test : load_gsm8k(train_path);
  const size_t shots = static_cast<size_t>(o.shots < 0 ? 8 : o.shots);
  if (train.size() < shots)
    throw InputError(train_path, std::nullopt, "has " + std::to_string(train.size()) + " problems, fewer than --shots " + std::to_string(shots));
  const std::vector<gsm8k::Problem> exemplars(train.begin(), train.begin() + static_cast<std::ptrdiff_t>(shots));
  // The exemplars are the first problems of the train file; when it is also the evaluated
  // file they are not evaluated.
  const bool shared = same_file(train_path, o.data);
  if (shared) test.erase(test.begin(), test.begin() + static_cast<std::ptrdiff_t>(shots));
  const size_t n = items_to_run(test.size(), o.n_samples);
  int64_t strict = 0, flexible = 0;
  for (size_t i = 0; i < n; ++i) {
    const gsm8k::Problem& p = test[i];
    const std::string prompt = as_prompt(m, gsm8k::build_prompt(exemplars, p), o.chat);
    const Generation g = m.generate(prompt, 256, gsm8k::stop_sequences());
    const auto s = gsm8k::extract_strict(g.text), f = gsm8k::extract_flexible(g.text);
    const bool ok_s = gsm8k::is_correct(s, p), ok_f = gsm8k::is_correct(f, p);
    strict += ok_s;
    flexible += ok_f;
    r.samples.push_back({{"index", i + (shared ? shots : 0)}, {"prompt", prompt}, {"output", g.text},
                         {"reference", gsm8k::reference(p)}, {"strict", s ? ojson(*s) : ojson()},
                         {"flexible", f ? ojson(*f) : ojson()}, {"correct_strict", ok_s}, {"correct_flexible", ok_f},
                         {"stopped_by", g.stopped_by}});
    progress("gsm8k", i, n, ok_f ? "correct" : "wrong");
  }
  r.metrics["exact_match_strict"] = fraction(strict, static_cast<int64_t>(n));
  r.metrics["exact_match_flexible"] = fraction(flexible, static_cast<int64_t>(n));
  r.metrics["n"] = n;
  r.details["shots"] = shots;
  r.details["exemplars_excluded_from_test"] = shared;
  return r;
}

TaskResult run_humaneval(const EvalModel& m, const TaskOptions& o) {
  TaskResult r;
  r.task = "humaneval";
  r.primary = "pass@1";
  const std::vector<humaneval::Problem> problems = humaneval::load(o.data);
  const size_t n = items_to_run(problems.size(), o.n_samples);
  SandboxLimits limits;  // 10 s wall, 10 s CPU, 1 GiB, 16 processes, 16 MiB files
  int64_t passed = 0;
  std::string isolation;
  for (size_t i = 0; i < n; ++i) {
    const humaneval::Problem& p = problems[i];
    const Generation g = m.generate(p.prompt, 384, humaneval::stop_sequences());
    const std::string completion = humaneval::truncate_completion(g.text);
    const humaneval::Outcome out = humaneval::check(p, completion, limits);
    passed += out.passed;
    isolation = describe_isolation(out.run.isolation);
    r.samples.push_back({{"task_id", p.task_id}, {"prompt", p.prompt}, {"output", g.text}, {"completion", completion},
                         {"passed", out.passed}, {"result", out.result}, {"sandbox_output", out.run.output},
                         {"seconds", out.run.wall_seconds}});
    progress("humaneval", i, n, out.result);
  }
  r.metrics["pass@1"] = fraction(passed, static_cast<int64_t>(n));
  r.metrics["n"] = n;
  r.details["sandbox"] = isolation;
  r.details["prompting"] = "completion of the prompt (no chat template), greedy";
  return r;
}

TaskResult run_ifeval(const EvalModel& m, const TaskOptions& o) {
  TaskResult r;
  r.task = "ifeval";
  r.primary = "prompt_level_strict";
  std::vector<ifeval::Prompt> prompts;
  for (const JsonlRecord& rec : read_jsonl(o.data)) {
    ifeval::Prompt p;
    p.key = rec.value.value("key", int64_t{0});
    p.prompt = string_field(rec, o.data, "prompt");
    if (!rec.value.contains("instruction_id_list") || !rec.value["instruction_id_list"].is_array() ||
        !rec.value.contains("kwargs") || !rec.value["kwargs"].is_array() ||
        rec.value["kwargs"].size() != rec.value["instruction_id_list"].size())
      throw InputError(o.data, std::nullopt,
                       "line " + std::to_string(rec.line) + ": needs instruction_id_list and kwargs lists of one length");
    for (const auto& id : rec.value["instruction_id_list"]) {
      const std::string s = id.get<std::string>();
      if (!ifeval::is_supported(s))
        throw InputError(o.data, std::nullopt, "line " + std::to_string(rec.line) + ": unknown instruction \"" + s + "\"");
      p.instruction_ids.push_back(s);
    }
    for (const auto& kw : rec.value["kwargs"]) p.kwargs.push_back(nlohmann::json::parse(kw.dump()));
    prompts.push_back(std::move(p));
  }
  const size_t n = items_to_run(prompts.size(), o.n_samples);
  int64_t prompt_strict = 0, prompt_loose = 0, inst_strict = 0, inst_loose = 0, inst_total = 0;
  ojson per_type = ojson::object();  // id -> [followed strictly, total]
  for (size_t i = 0; i < n; ++i) {
    const ifeval::Prompt& p = prompts[i];
    const std::string prompt = as_prompt(m, p.prompt, o.chat);
    const Generation g = m.generate(prompt, 512, {});
    ifeval::PromptResult res;
    try {
      res = ifeval::evaluate(p, g.text);
    } catch (const std::invalid_argument& e) {
      throw InputError(o.data, std::nullopt, "key " + std::to_string(p.key) + ": " + e.what());
    }
    prompt_strict += res.strict_all();
    prompt_loose += res.loose_all();
    for (size_t k = 0; k < res.strict.size(); ++k) {
      inst_strict += res.strict[k];
      inst_loose += res.loose[k];
      ++inst_total;
      ojson& cell = per_type[p.instruction_ids[k]];
      if (cell.is_null()) cell = {0, 0};
      cell[0] = cell[0].get<int64_t>() + (res.strict[k] ? 1 : 0);
      cell[1] = cell[1].get<int64_t>() + 1;
    }
    r.samples.push_back({{"key", p.key}, {"prompt", prompt}, {"output", g.text}, {"instruction_ids", p.instruction_ids},
                         {"strict", res.strict}, {"loose", res.loose}});
    progress("ifeval", i, n, res.strict_all() ? "followed" : "not followed");
  }
  r.metrics["prompt_level_strict"] = fraction(prompt_strict, static_cast<int64_t>(n));
  r.metrics["prompt_level_loose"] = fraction(prompt_loose, static_cast<int64_t>(n));
  r.metrics["instruction_level_strict"] = fraction(inst_strict, inst_total);
  r.metrics["instruction_level_loose"] = fraction(inst_loose, inst_total);
  r.metrics["n"] = n;
  r.details["per_instruction_strict"] = per_type;
  return r;
}

TaskResult run_bfcl(const EvalModel& m, const TaskOptions& o) {
  TaskResult r;
  r.task = "bfcl";
  r.primary = "accuracy";
  // Questions: BFCL_v3_simple.json (JSON lines); answers: the possible_answer file beside it
  // (--train names it explicitly).
  std::string answers_path = o.train;
  if (answers_path.empty()) {
    std::filesystem::path p(o.data);
    answers_path = (p.parent_path() / (p.stem().string() + ".possible_answer" + p.extension().string())).string();
    if (!std::filesystem::exists(answers_path))
      answers_path = (p.parent_path() / "possible_answer" / p.filename()).string();
  }
  std::map<std::string, ojson> answers;
  for (const JsonlRecord& a : read_jsonl(answers_path)) {
    if (!a.value.contains("ground_truth") || !a.value["ground_truth"].is_array() || a.value["ground_truth"].empty())
      throw InputError(answers_path, std::nullopt, "line " + std::to_string(a.line) + ": no ground_truth list");
    answers[string_field(a, answers_path, "id")] = a.value["ground_truth"][0];
  }
  const std::vector<JsonlRecord> questions = read_jsonl(o.data);
  const size_t n = items_to_run(questions.size(), o.n_samples);
  const bool native_tools = m.template_mentions("tools");
  int64_t correct = 0, parsed = 0;
  for (size_t i = 0; i < n; ++i) {
    const JsonlRecord& q = questions[i];
    const std::string id = string_field(q, o.data, "id");
    if (!q.value.contains("question") || !q.value["question"].is_array() || q.value["question"].empty() ||
        !q.value.contains("function") || !q.value["function"].is_array() || q.value["function"].empty())
      throw InputError(o.data, std::nullopt, "line " + std::to_string(q.line) + ": needs question and function lists");
    const auto it = answers.find(id);
    if (it == answers.end()) throw InputError(answers_path, std::nullopt, "no possible answer for \"" + id + "\"");
    ojson tools = ojson::array();
    for (const ojson& f : q.value["function"]) tools.push_back(bfcl::to_openai_tool(f));
    ojson messages = q.value["question"][0];
    std::string prompt;
    if (o.chat && native_tools) {
      prompt = m.chat_messages(messages, tools);
    } else {
      // Templates without tools support, and --no-chat, get the documents as text.
      std::string system = "You can call these functions. To call one, answer only with "
                           "<tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call>.\n";
      for (const ojson& t : tools) system += t.dump() + "\n";
      if (o.chat) {
        messages.insert(messages.begin(), ojson{{"role", "system"}, {"content", system}});
        prompt = m.chat_messages(messages, nullptr);
      } else {
        prompt = system;
        for (const ojson& msg : messages) prompt += "\n" + msg.value("role", "user") + ": " + msg.value("content", "");
        prompt += "\nassistant:";
      }
    }
    const Generation g = m.generate(prompt, 256, {});
    const bfcl::ParseResult calls = bfcl::parse_calls(g.text);
    bfcl::CheckResult check{false, calls.error};
    if (calls.ok) {
      ++parsed;
      check = bfcl::check_simple(q.value["function"][0], calls.calls, it->second);
    }
    correct += check.valid;
    ojson emitted = ojson::array();
    for (const auto& c : calls.calls) emitted.push_back({{"name", c.name}, {"arguments", c.arguments}});
    r.samples.push_back({{"id", id}, {"prompt", prompt}, {"output", g.text}, {"syntax", calls.ok ? calls.syntax : ""},
                         {"calls", emitted}, {"valid", check.valid}, {"error", check.error}});
    progress("bfcl", i, n, check.valid ? "valid" : "invalid: " + check.error);
  }
  r.metrics["accuracy"] = fraction(correct, static_cast<int64_t>(n));
  r.metrics["parsed"] = fraction(parsed, static_cast<int64_t>(n));
  r.metrics["n"] = n;
  r.details["tools_in_prompt"] = !o.chat        ? "plain text (--no-chat)"
                                 : native_tools ? "the chat template's tools"
                                                : "a system turn (the template has no tools support)";
  return r;
}

}  // namespace optiq::eval
