// The tasks of `optiq eval`: each reads its dataset (or generates its items), runs the model
// (greedy generation or option log-probabilities) and scores with the scorer of its own file
// (gsm8k.h, mmlu.h, humaneval.h, ifeval.h, bfcl.h, hashhop.h, needle.h). Every prompt and
// output is kept in the samples for inspection.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "eval/eval_model.h"

namespace optiq::eval {

using ojson = nlohmann::ordered_json;

struct TaskOptions {
  std::string data;        // the dataset file or folder (the text file for ppl)
  std::string train;       // exemplars: gsm8k train.jsonl, mmlu dev folder (default: data)
  int shots = -1;          // exemplars per prompt; < 0: the task's default (gsm8k 8, mmlu 5)
  int64_t n_samples = -1;  // evaluate the first N items; < 0: all
  bool chat = false;       // prompts through the model's chat template
  uint64_t seed = 1;       // hashhop / needle generation
  std::vector<int64_t> lengths;  // hashhop / needle context lengths in tokens
  std::vector<int> hops;         // hashhop hop counts
  std::vector<double> depths;    // needle depths in [0, 1]
  int64_t ppl_ctx = 512;         // ppl / kld chunk length
};

struct TaskResult {
  std::string task;
  std::string primary;         // the headline metric's name in `metrics`
  ojson metrics = ojson::object();  // name -> number (accuracies in [0, 1])
  ojson details = ojson::object();  // per-subject / per-cell breakdowns, settings
  ojson samples = ojson::array();   // one object per item: prompt, output, expected, verdict
};

// Tasks that score a model on its own.
TaskResult run_gsm8k(const EvalModel& m, const TaskOptions& o);
TaskResult run_mmlu(const EvalModel& m, const TaskOptions& o);
TaskResult run_humaneval(const EvalModel& m, const TaskOptions& o);
TaskResult run_ifeval(const EvalModel& m, const TaskOptions& o);
TaskResult run_bfcl(const EvalModel& m, const TaskOptions& o);
TaskResult run_hashhop(const EvalModel& m, const TaskOptions& o);
TaskResult run_needle(const EvalModel& m, const TaskOptions& o);
TaskResult run_ppl(const EvalModel& m, const TaskOptions& o);
// KL divergence of `m` from `reference` over the ppl chunks of o.data.
TaskResult run_kld(const EvalModel& m, const EvalModel& reference, const TaskOptions& o);

// The tasks `capability` averages, in order.
const std::vector<std::string>& capability_tasks();

// Whether generation tasks use the chat template by default (ifeval, bfcl: yes).
bool chat_by_default(const std::string& task);

}  // namespace optiq::eval
