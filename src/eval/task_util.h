// Small pieces the task runners share.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "eval/eval_model.h"
#include "eval/tasks.h"

namespace optiq::eval {

// How many of n items to evaluate under --n-samples.
inline size_t items_to_run(size_t n, int64_t n_samples) {
  return n_samples < 0 ? n : std::min(n, static_cast<size_t>(n_samples));
}

// The prompt as the model sees it: raw, or one user turn of its chat template.
inline std::string as_prompt(const EvalModel& m, const std::string& text, bool chat) {
  return chat ? m.chat(text) : text;
}

inline double fraction(int64_t hits, int64_t total) {
  return total > 0 ? static_cast<double>(hits) / static_cast<double>(total) : 0.0;
}

// One progress line per item on stderr: "gsm8k 3/10 correct".
inline void progress(const std::string& task, size_t i, size_t n, const std::string& verdict) {
  std::fprintf(stderr, "%s %zu/%zu %s\n", task.c_str(), i + 1, n, verdict.c_str());
}

}  // namespace optiq::eval
