#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/kv_cache_options.h"
#include "cli/lora_options.h"
#include "engine/threads.h"
#include "eval/eval_model.h"
#include "eval/heatmap_svg.h"
#include "eval/tasks.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace optiq::cli {
namespace {

using eval::ojson;

struct EvalArgs {
  std::string model, task, data, train, baseline, json_out, svg_out;
  eval::TaskOptions options;
  bool chat = false, no_chat = false;  // --chat / --no-chat; neither: the task's default
  int threads = 0;
  int64_t n_ctx = 0;
  KVCacheArgs kv;  // the evaluated model's KV cache (the baseline keeps F32)
  std::vector<std::string> lora;  // --lora PATH[:SCALE] on the evaluated model (not the baseline)
};

const std::vector<std::string>& known_tasks() {
  static const std::vector<std::string> t = {"ppl",    "kld",     "gsm8k",   "mmlu",   "humaneval",
                                             "ifeval", "bfcl",    "hashhop", "needle", "capability"};
  return t;
}

// Where `capability` finds each dataset under --data (the layout of ../shared/data).
std::string dataset_in(const std::filesystem::path& root, const std::string& task) {
  auto first_match = [&](const std::filesystem::path& dir, const std::string& suffix, const std::string& exclude) {
    std::vector<std::string> found;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      const std::string name = e.path().filename().string();
      if (name.ends_with(suffix) && (exclude.empty() || name.find(exclude) == std::string::npos)) found.push_back(e.path().string());
    }
    std::sort(found.begin(), found.end());
    if (found.empty())
      throw InputError(dir.string(), std::nullopt, "no *" + suffix + " file for the " + task + " task of capability");
    return found.front();
  };
  if (task == "gsm8k") return first_match(root / "gsm8k", ".jsonl", "");
  if (task == "mmlu") return (root / "mmlu" / "dev").string();
  if (task == "humaneval") return first_match(root / "humaneval", ".gz", "");
  if (task == "ifeval") return first_match(root / "ifeval", ".jsonl", "");
  if (task == "bfcl") return first_match(root / "bfcl", ".json", "possible_answer");
  return "";
}

eval::TaskResult run_one(const std::string& task, const eval::EvalModel& m, const eval::EvalModel* baseline,
                         eval::TaskOptions o, const EvalArgs& args) {
  o.chat = args.chat || (!args.no_chat && eval::chat_by_default(task));
  if (task == "ppl") return eval::run_ppl(m, o);
  if (task == "kld") {
    if (!baseline) throw InputError("optiq eval", std::nullopt, "--task kld measures against a reference: give it with --baseline MODEL2");
    return eval::run_kld(m, *baseline, o);
  }
  if (task == "gsm8k") return eval::run_gsm8k(m, o);
  if (task == "mmlu") return eval::run_mmlu(m, o);
  if (task == "humaneval") return eval::run_humaneval(m, o);
  if (task == "ifeval") return eval::run_ifeval(m, o);
  if (task == "bfcl") return eval::run_bfcl(m, o);
  if (task == "hashhop") return eval::run_hashhop(m, o);
  return eval::run_needle(m, o);
}

ojson to_json(const eval::TaskResult& r, double seconds) {
  return {{"task", r.task}, {"primary", r.primary}, {"metrics", r.metrics}, {"details", r.details},
          {"wall_seconds", seconds}, {"samples", r.samples}};
}

// Every task of a run against one model: {task -> result json}, plus capability's mean.
ojson evaluate_model(const EvalArgs& args, const eval::EvalModel& m, const eval::EvalModel* reference) {
  ojson out = ojson::object();
  std::vector<std::string> tasks;
  if (args.task == "capability") tasks = eval::capability_tasks();
  else tasks = {args.task};
  double sum = 0;
  for (const std::string& t : tasks) {
    eval::TaskOptions o = args.options;
    if (args.task == "capability") {
      o.data = dataset_in(args.data, t);
      o.train = "";
    }
    const auto start = std::chrono::steady_clock::now();
    const eval::TaskResult r = run_one(t, m, reference, o, args);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    out[t] = to_json(r, seconds);
    sum += r.metrics[r.primary].get<double>();
  }
  if (args.task == "capability") out["capability"] = sum / static_cast<double>(tasks.size());
  return out;
}

// metric -> value, over the tasks of one evaluation.
std::vector<std::pair<std::string, double>> flat_metrics(const ojson& results) {
  std::vector<std::pair<std::string, double>> rows;
  for (auto it = results.begin(); it != results.end(); ++it) {
    if (it.key() == "capability") {
      rows.emplace_back("capability", it.value().get<double>());
      continue;
    }
    for (auto m = it.value()["metrics"].begin(); m != it.value()["metrics"].end(); ++m)
      if (m.key() != "n" && m.key() != "n_chunks" && m.key() != "n_tokens")
        rows.emplace_back(it.key() + "." + m.key(), m.value().get<double>());
  }
  return rows;
}

void print_table(const ojson& model, const ojson* baseline) {
  const auto rows = flat_metrics(model);
  std::vector<std::pair<std::string, double>> base_rows;
  if (baseline) base_rows = flat_metrics(*baseline);
  if (baseline) std::printf("| metric | model | baseline | Δ |\n|---|---:|---:|---:|\n");
  else std::printf("| metric | model |\n|---|---:|\n");
  for (size_t i = 0; i < rows.size(); ++i) {
    if (baseline && i < base_rows.size())
      std::printf("| %s | %.4f | %.4f | %+.4f |\n", rows[i].first.c_str(), rows[i].second, base_rows[i].second,
                  rows[i].second - base_rows[i].second);
    else
      std::printf("| %s | %.4f |\n", rows[i].first.c_str(), rows[i].second);
  }
}

void print_needle_heatmap(const ojson& results) {
  if (!results.contains("needle")) return;
  const ojson& h = results["needle"]["details"]["heatmap"];
  std::printf("\nneedle accuracy (rows: context tokens, columns: depth)\n%8s", "");
  for (const auto& d : h["depths"]) std::printf(" %5.2f", d.get<double>());
  std::printf("\n");
  for (size_t i = 0; i < h["lengths"].size(); ++i) {
    std::printf("%8lld", static_cast<long long>(h["lengths"][i].get<int64_t>()));
    for (const auto& a : h["accuracy"][i]) std::printf(" %5.2f", a.get<double>());
    std::printf("\n");
  }
}

// The needle heatmap as an SVG picture: rows context lengths, columns depths.
void write_needle_svg(const ojson& results, const std::string& path) {
  const ojson& h = results["needle"]["details"]["heatmap"];
  eval::Heatmap map;
  map.title = "needle in a haystack: accuracy";
  map.row_axis = "context tokens";
  map.column_axis = "depth of the needle";
  for (const auto& l : h["lengths"]) map.rows.push_back(std::to_string(l.get<int64_t>()));
  for (const auto& d : h["depths"]) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%.2f", d.get<double>());
    map.columns.push_back(buf);
  }
  for (const auto& row : h["accuracy"]) map.values.push_back(row.get<std::vector<double>>());
  const std::string svg = eval::heatmap_svg(map);
  AtomicFile out(path);
  out.write(svg.data(), svg.size());
  out.commit();
}

template <class T>
std::vector<T> parse_list(const std::string& text, const char* flag) {
  std::vector<T> out;
  std::stringstream s(text);
  for (std::string item; std::getline(s, item, ',');) {
    try {
      size_t used = 0;
      const double v = std::stod(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      out.push_back(static_cast<T>(v));
    } catch (const std::exception&) {
      throw InputError(flag, std::nullopt, "\"" + item + "\" is not a number");
    }
  }
  return out;
}

}  // namespace

Command register_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto lists = std::make_shared<std::array<std::string, 3>>();  // lengths, hops, depths
  CLI::App* sub = app.add_subcommand("eval", "Score a model on a benchmark task (optionally against a baseline model)");
  sub->add_option("model", args->model, ".gguf file, Hugging Face folder, or hub id org/name[@revision]")->required();
  sub->add_option("--task", args->task, "ppl, kld, gsm8k, mmlu, humaneval, ifeval, bfcl, hashhop, needle or capability")
      ->required();
  sub->add_option("--data", args->data,
                  "the dataset: gsm8k/ifeval .jsonl, mmlu .csv or folder, HumanEval .jsonl[.gz], BFCL questions "
                  "file, a text file for ppl/kld, the folder of all of them for capability");
  sub->add_option("--train", args->train,
                  "exemplars: gsm8k train .jsonl, mmlu dev folder (default: --data, exemplars left out of the "
                  "evaluated items); for bfcl the possible_answer file");
  sub->add_option("--shots", args->options.shots, "exemplars per prompt (gsm8k 8, mmlu 5)")->check(CLI::NonNegativeNumber);
  sub->add_option("--n-samples", args->options.n_samples,
                  "evaluate the first N items (ppl/kld: chunks; hashhop/needle: items per cell)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--baseline", args->baseline, "a second model evaluated the same way, shown side by side (the reference of kld)");
  sub->add_option("--json", args->json_out, "write every prompt, output and metric to this JSON file");
  CLI::Option* chat = sub->add_flag("--chat", args->chat, "prompt through the model's chat template (default for ifeval and bfcl)");
  sub->add_flag("--no-chat", args->no_chat, "prompt with the raw text (default for the other tasks)")->excludes(chat);
  sub->add_option("-t,--threads", args->threads, "matmul threads (default: the number of cores)")->check(CLI::PositiveNumber);
  sub->add_option("-c,--ctx-size", args->n_ctx, "context of generation tasks (default: the trained one, at most 4096); ppl/kld chunk length (default 512)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--svg", args->svg_out, "needle: write the heatmap as an SVG picture");
  sub->add_option("--seed", args->options.seed, "seed of the generated hashhop and needle items (default 1)");
  sub->add_option("--lengths", (*lists)[0], "hashhop/needle context lengths in tokens, comma-separated (default 256,512 / 256,512,1024)");
  sub->add_option("--hops", (*lists)[1], "hashhop hop counts, comma-separated (default 1,2)");
  sub->add_option("--depths", (*lists)[2], "needle depths in [0,1], comma-separated (default 0,0.25,0.5,0.75,1)");
  add_kv_cache_options(sub, args->kv);
  add_lora_option(sub, args->lora);
  return {sub, [args, lists] {
            const auto& tasks = known_tasks();
            if (std::find(tasks.begin(), tasks.end(), args->task) == tasks.end())
              throw InputError("--task", std::nullopt, "unknown task \"" + args->task + "\"; one of ppl, kld, gsm8k, mmlu, humaneval, ifeval, bfcl, hashhop, needle, capability");
            const bool generated = args->task == "hashhop" || args->task == "needle";
            if (!generated && args->data.empty())
              throw InputError("optiq eval", std::nullopt, "--task " + args->task + " needs its dataset: --data PATH");
            if (!args->data.empty() && !std::filesystem::exists(args->data))
              throw InputError(args->data, std::nullopt, "no such file or folder");
            if (!args->train.empty() && !std::filesystem::exists(args->train))
              throw InputError(args->train, std::nullopt, "no such file or folder");
            args->options.lengths = parse_list<int64_t>((*lists)[0], "--lengths");
            args->options.hops = parse_list<int>((*lists)[1], "--hops");
            args->options.depths = parse_list<double>((*lists)[2], "--depths");
            args->options.data = args->data;
            args->options.train = args->train;
            const bool chunked = args->task == "ppl" || args->task == "kld";
            if (chunked) args->options.ppl_ctx = args->n_ctx > 0 ? args->n_ctx : 512;
            engine::set_num_threads(args->threads);

            const auto start = std::chrono::steady_clock::now();
            eval::EvalModel model(resolve_model_argument(args->model), chunked ? 0 : args->n_ctx);
            model.set_kv_config(kv_cache_config(args->kv, model.model()));
            const LoadedAdapters adapters = load_adapters(model.model(), args->lora);
            model.set_deltas(adapters.deltas);
            std::fprintf(stderr, "%s\n",
                         kv_cache_summary(engine::make_kv_cache(model.model(), model.n_ctx(), model.kv_config())).c_str());
            std::unique_ptr<eval::EvalModel> baseline;
            if (!args->baseline.empty())
              baseline = std::make_unique<eval::EvalModel>(resolve_model_argument(args->baseline), chunked ? 0 : args->n_ctx);
            ojson report = {{"model", model.path()}, {"task", args->task}, {"data", args->data}};
            report["results"] = evaluate_model(*args, model, baseline.get());
            if (baseline && args->task != "kld") {
              report["baseline"] = baseline->path();
              report["baseline_results"] = evaluate_model(*args, *baseline, nullptr);
            }
            report["wall_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            print_table(report["results"], report.contains("baseline_results") ? &report["baseline_results"] : nullptr);
            print_needle_heatmap(report["results"]);
            if (!args->svg_out.empty()) {
              if (args->task != "needle") throw InputError("--svg", std::nullopt, "only the needle task draws a heatmap");
              write_needle_svg(report["results"], args->svg_out);
            }
            if (!args->json_out.empty()) {
              const std::string text = report.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
              AtomicFile out(args->json_out);
              out.write(text.data(), text.size());
              out.commit();
            }
            return 0;
          }};
}

}  // namespace optiq::cli
