// Tasks scored on log-probabilities or on generated contexts: mmlu, ppl, kld, hashhop, needle.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <unistd.h>

#include "eval/hashhop.h"
#include "eval/kl_divergence.h"
#include "eval/logits_file.h"
#include "eval/mmlu.h"
#include "eval/needle.h"
#include "eval/perplexity.h"
#include "eval/task_util.h"
#include "eval/tasks.h"
#include "util/error.h"

namespace optiq::eval {

const std::vector<std::string>& capability_tasks() {
  static const std::vector<std::string> t = {"mmlu", "gsm8k", "ifeval", "bfcl", "humaneval", "hashhop"};
  return t;
}

bool chat_by_default(const std::string& task) { return task == "ifeval" || task == "bfcl"; }

TaskResult run_mmlu(const EvalModel& m, const TaskOptions& o) {
  TaskResult r;
  r.task = "mmlu";
  r.primary = "accuracy";
  const std::string train_path = o.train.empty() ? o.data : o.train;
  const std::vector<mmlu::Question> test = mmlu::load(o.data);
  const std::vector<mmlu::Question> train = mmlu::load(train_path);
  std::error_code ec;
  const bool shared = std::filesystem::equivalent(train_path, o.data, ec);
  const size_t shots = static_cast<size_t>(o.shots < 0 ? 5 : o.shots);
  std::map<std::string, std::vector<const mmlu::Question*>> train_by_subject, test_by_subject;
  for (const auto& q : train) train_by_subject[q.subject].push_back(&q);
  for (const auto& q : test) test_by_subject[q.subject].push_back(&q);
  // Round robin over subjects, so that --n-samples covers many of them.
  std::vector<const mmlu::Question*> order;
  for (size_t k = 0; order.size() < test.size(); ++k)
    for (const auto& [subject, qs] : test_by_subject)
      if (k < qs.size()) order.push_back(qs[k]);
  const size_t n = items_to_run(order.size(), o.n_samples);
  const std::array<std::string, 4>& spaced = mmlu::choice_continuations();
  const std::vector<std::string> letters = o.chat ? std::vector<std::string>{"A", "B", "C", "D"}
                                                  : std::vector<std::string>(spaced.begin(), spaced.end());
  int64_t correct = 0;
  std::map<std::string, std::pair<int64_t, int64_t>> per_subject;  // subject -> (correct, total)
  for (size_t i = 0; i < n; ++i) {
    const mmlu::Question& q = *order[i];
    // Exemplars: the subject's first dev questions, the evaluated one left out when the dev
    // split is also the evaluated file (leave-one-out).
    std::vector<mmlu::Question> exemplars;
    for (const mmlu::Question* e : train_by_subject[q.subject]) {
      if (exemplars.size() == shots) break;
      if (shared && e->line == q.line && e->question == q.question) continue;
      exemplars.push_back(*e);
    }
    const std::string prompt = as_prompt(m, mmlu::build_prompt(exemplars, q), o.chat);
    const std::vector<double> lp = m.continuation_logprobs(prompt, letters);
    const int pred = mmlu::predict({lp[0], lp[1], lp[2], lp[3]});
    const bool ok = pred == q.answer;
    correct += ok;
    auto& cell = per_subject[q.subject];
    cell.first += ok;
    cell.second += 1;
    r.samples.push_back({{"subject", q.subject}, {"prompt", prompt}, {"logprobs", lp},
                         {"output", std::string(1, static_cast<char>('A' + pred))},
                         {"answer", std::string(1, static_cast<char>('A' + q.answer))}, {"correct", ok},
                         {"n_shots", exemplars.size()}});
    progress("mmlu", i, n, ok ? "correct" : "wrong");
  }
  r.metrics["accuracy"] = fraction(correct, static_cast<int64_t>(n));
  r.metrics["n"] = n;
  ojson subjects = ojson::object();
  for (const auto& [s, c] : per_subject) subjects[s] = {{"accuracy", fraction(c.first, c.second)}, {"n", c.second}};
  r.details["per_subject"] = subjects;
  r.details["shots"] = shots;
  r.details["leave_one_out"] = shared;
  return r;
}

namespace {


struct Chunks {
  std::vector<int32_t> tokens;
  int64_t n_chunk = 0;
  ChunkSetup setup;
};

Chunks make_chunks(const EvalModel& m, const TaskOptions& o) {
  Chunks c;
  c.setup.n_ctx = o.ppl_ctx;
  c.setup.bos = m.tokenizer().add_bos ? m.tokenizer().bos : -1;
  c.setup.kv = m.kv_config();
  if (scored_per_chunk(c.setup.n_ctx) < 1) throw InputError("-c", std::nullopt, "a perplexity context needs at least 3 tokens");
  c.tokens = m.tokenizer().encode(read_perplexity_text(o.data), /*add_special=*/true, /*parse_special=*/false);
  const int64_t max_chunks = static_cast<int64_t>(c.tokens.size()) / c.setup.n_ctx;
  if (max_chunks < 1)
    throw InputError(o.data, std::nullopt,
                     "tokenizes to " + std::to_string(c.tokens.size()) + " tokens, less than one chunk of " +
                         std::to_string(c.setup.n_ctx));
  c.n_chunk = o.n_samples < 0 ? max_chunks : std::min<int64_t>(o.n_samples, max_chunks);
  return c;
}

}  // namespace

TaskResult run_ppl(const EvalModel& m, const TaskOptions& o) {
  TaskResult r;
  r.task = "ppl";
  r.primary = "ppl";
  const Chunks c = make_chunks(m, o);
  const PerplexityResult p = compute_perplexity(m.model(), c.tokens, c.n_chunk, c.setup, nullptr, stderr, stderr);
  r.metrics["ppl"] = p.final.ppl;
  r.metrics["ppl_error"] = p.final.error;
  r.metrics["n_chunks"] = c.n_chunk;
  r.details["ctx"] = c.setup.n_ctx;
  r.details["running_ppl"] = p.running_ppl;
  return r;
}

TaskResult run_kld(const EvalModel& m, const EvalModel& reference, const TaskOptions& o) {
  TaskResult r;
  r.task = "kld";
  r.primary = "kld_mean";
  if (m.model().hp.n_vocab != reference.model().hp.n_vocab)
    throw InputError(reference.path(), std::nullopt, "the baseline has another vocabulary size than the model");
  const Chunks c = make_chunks(reference, o);
  // The reference's log-probabilities go through llama.cpp's base-file format, exactly as
  // `optiq perplexity --kl-divergence-base` writes and reads them.
  std::string tmpl = (std::filesystem::temp_directory_path() / "optiq-kld-XXXXXX").string();
  const int fd = mkstemp(tmpl.data());
  if (fd < 0) throw RuntimeError("cannot create a temporary file for the KL divergence base");
  close(fd);
  struct Remove {
    std::string path;
    ~Remove() { std::filesystem::remove(path); }
  } cleanup{tmpl};
  PerplexityResult base_ppl;
  {
    LogitsFileWriter base(tmpl, static_cast<int32_t>(c.setup.n_ctx), static_cast<int32_t>(reference.model().hp.n_vocab),
                          std::span(c.tokens).first(static_cast<size_t>(c.n_chunk * c.setup.n_ctx)));
    base_ppl = compute_perplexity(reference.model(), c.tokens, c.n_chunk, c.setup, &base, stderr, stderr);
    base.commit();
  }
  const LogitsFile base(tmpl);
  ChunkSetup model_setup = c.setup;  // the reference's chunks with the model's own KV cache
  model_setup.kv = m.kv_config();
  const KldResult k = compute_kl_divergence(m.model(), base, c.n_chunk, model_setup, stderr, stderr);
  const double count = static_cast<double>(std::max<int64_t>(1, k.sums.count));
  r.metrics["kld_mean"] = k.sums.kld / count;
  r.metrics["same_top"] = static_cast<double>(k.sums.n_same_top) / count;
  r.metrics["ppl"] = std::exp(k.sums.nll / count);
  r.metrics["ppl_baseline"] = base_ppl.final.ppl;
  r.metrics["n_tokens"] = k.sums.count;
  r.details["ctx"] = c.setup.n_ctx;
  r.details["n_chunks"] = c.n_chunk;
  return r;
}

TaskResult run_hashhop(const EvalModel& m, const TaskOptions& o) {
  TaskResult r;
  r.task = "hashhop";
  r.primary = "accuracy";
  const std::vector<int64_t> lengths = o.lengths.empty() ? std::vector<int64_t>{256, 512} : o.lengths;
  const std::vector<int> hops = o.hops.empty() ? std::vector<int>{1, 2} : o.hops;
  const int64_t per_cell = o.n_samples < 0 ? 4 : o.n_samples;
  const auto counter = [&](const std::string& s) { return m.count_tokens(as_prompt(m, s, o.chat)); };
  int64_t correct = 0, total = 0;
  ojson grid = ojson::array();
  for (const int64_t len : lengths) {
    for (const int h : hops) {
      int64_t cell = 0;
      for (int64_t s = 0; s < per_cell; ++s) {
        const hashhop::Item item = hashhop::make_item(o.seed + static_cast<uint64_t>(s), h, len, counter);
        const std::string prompt = as_prompt(m, item.prompt, o.chat);
        const Generation g = m.generate(prompt, 16, {"'", "\n"});
        const bool ok = hashhop::is_correct(item, g.text);
        cell += ok;
        r.samples.push_back({{"length", len}, {"hops", h}, {"n_tokens", item.n_tokens}, {"prompt", prompt},
                             {"output", g.text}, {"expected", item.expected}, {"correct", ok}});
        progress("hashhop", static_cast<size_t>(total), lengths.size() * hops.size() * static_cast<size_t>(per_cell),
                 ok ? "correct" : "wrong");
        ++total;
      }
      correct += cell;
      grid.push_back({{"length", len}, {"hops", h}, {"accuracy", fraction(cell, per_cell)}, {"n", per_cell}});
    }
  }
  r.metrics["accuracy"] = fraction(correct, total);
  r.metrics["n"] = total;
  r.details["by_length_and_hops"] = grid;
  r.details["seed"] = o.seed;
  return r;
}

TaskResult run_needle(const EvalModel& m, const TaskOptions& o) {
  TaskResult r;
  r.task = "needle";
  r.primary = "accuracy";
  const std::vector<int64_t> lengths = o.lengths.empty() ? std::vector<int64_t>{256, 512, 1024} : o.lengths;
  const std::vector<double> depths = o.depths.empty() ? std::vector<double>{0.0, 0.25, 0.5, 0.75, 1.0} : o.depths;
  const int64_t per_cell = o.n_samples < 0 ? 1 : o.n_samples;
  const auto counter = [&](const std::string& s) { return m.count_tokens(as_prompt(m, s, o.chat)); };
  int64_t correct = 0, total = 0;
  ojson heatmap = ojson::array();  // [lengths][depths] accuracy
  for (const int64_t len : lengths) {
    ojson row = ojson::array();
    for (const double d : depths) {
      int64_t cell = 0;
      for (int64_t s = 0; s < per_cell; ++s) {
        const needle::Item item = needle::make_item(o.seed + static_cast<uint64_t>(s), d, len, counter);
        const std::string prompt = as_prompt(m, item.prompt, o.chat);
        const Generation g = m.generate(prompt, 12, {"\n"});
        const bool ok = needle::is_correct(item, g.text);
        cell += ok;
        r.samples.push_back({{"length", len}, {"depth", d}, {"n_tokens", item.n_tokens}, {"prompt", prompt},
                             {"output", g.text}, {"expected", item.expected}, {"correct", ok}});
        progress("needle", static_cast<size_t>(total), lengths.size() * depths.size() * static_cast<size_t>(per_cell),
                 ok ? "correct" : "wrong");
        ++total;
      }
      correct += cell;
      row.push_back(fraction(cell, per_cell));
    }
    heatmap.push_back(row);
  }
  r.metrics["accuracy"] = fraction(correct, total);
  r.metrics["n"] = total;
  r.details["heatmap"] = {{"lengths", lengths}, {"depths", depths}, {"accuracy", heatmap}};
  r.details["seed"] = o.seed;
  return r;
}

}  // namespace optiq::eval
