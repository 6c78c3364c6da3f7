// HumanEval (Chen et al. 2021): complete a Python function from its signature and docstring.
// pass@1 with greedy decoding: the completion is cut at the first stop sequence
// ("\nclass", "\ndef", "\n#", "\nif", "\nprint", as in the paper's evaluation), and the program
// prompt + completion + "\n" + test + "\ncheck(entry_point)\n" must exit 0 in the sandbox.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "eval/sandbox.h"

namespace optiq::eval::humaneval {

struct Problem {
  std::string task_id;      // "HumanEval/0"
  std::string prompt;       // imports, signature, docstring
  std::string entry_point;  // the function check() is called with
  std::string test;         // defines check(candidate)
  std::string canonical_solution;  // the reference body (used by tests)
};

// HumanEval.jsonl or .jsonl.gz.
std::vector<Problem> load(const std::filesystem::path& path);

const std::vector<std::string>& stop_sequences();

// The completion up to (not including) the earliest stop sequence.
std::string truncate_completion(const std::string& completion);

// The program the sandbox runs.
std::string build_program(const Problem& p, const std::string& completion);

struct Outcome {
  bool passed = false;
  std::string result;  // "passed", "failed: <last output line>", "timed out"
  SandboxResult run;
};

Outcome check(const Problem& p, const std::string& completion, const SandboxLimits& limits = {});

}  // namespace optiq::eval::humaneval
