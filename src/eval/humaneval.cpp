#include "eval/humaneval.h"

#include "eval/jsonl.h"
#include "util/error.h"

namespace optiq::eval::humaneval {

std::vector<Problem> load(const std::filesystem::path& path) {
  const std::string file = path.string();
  std::vector<Problem> out;
  for (const JsonlRecord& r : read_jsonl(path)) {
    Problem p;
    p.task_id = string_field(r, file, "task_id");
    p.prompt = string_field(r, file, "prompt");
    p.entry_point = string_field(r, file, "entry_point");
    p.test = string_field(r, file, "test");
    if (r.value.contains("canonical_solution") && r.value["canonical_solution"].is_string())
      p.canonical_solution = r.value["canonical_solution"].get<std::string>();
    out.push_back(std::move(p));
  }
  return out;
}

const std::vector<std::string>& stop_sequences() {
  static const std::vector<std::string> stops = {"\nclass", "\ndef", "\n#", "\nif", "\nprint"};
  return stops;
}

std::string truncate_completion(const std::string& completion) {
  size_t cut = completion.size();
  for (const std::string& s : stop_sequences()) cut = std::min(cut, completion.find(s));
  return completion.substr(0, cut);
}

std::string build_program(const Problem& p, const std::string& completion) {
  return p.prompt + completion + "\n" + p.test + "\n" + "check(" + p.entry_point + ")\n";
}

Outcome check(const Problem& p, const std::string& completion, const SandboxLimits& limits) {
  Outcome o;
  o.run = run_python_sandboxed(build_program(p, completion), limits);
  o.passed = o.run.passed();
  if (o.passed) {
    o.result = "passed";
  } else if (o.run.timed_out) {
    o.result = "timed out";
  } else {
    std::string last;
    size_t end = o.run.output.find_last_not_of("\n ");
    if (end != std::string::npos) {
      const size_t begin = o.run.output.rfind('\n', end);
      last = o.run.output.substr(begin == std::string::npos ? 0 : begin + 1, end - (begin == std::string::npos ? 0 : begin + 1) + 1);
    }
    o.result = "failed: " + (last.empty() ? "exit code " + std::to_string(o.run.exit_code) : last);
  }
  return o;
}

}  // namespace optiq::eval::humaneval
