// optiq lora train MODEL --data PATH -o DIR [...]   LoRA fine-tuning on the frozen (quantized) base
// optiq lora info DIR                                what a trained adapter holds and how it trained
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>

#include "calib/mix.h"
#include "cli/commands.h"
#include "engine/threads.h"
#include "model/arch.h"
#include "model/model_source.h"
#include "model/tokenizer.h"
#include "train/dataset.h"
#include "train/rank_rule.h"
#include "train/train_outputs.h"
#include "train/train_state.h"
#include "train/trainer.h"
#include "util/error.h"
#include "util/json_file.h"
#include "util/list_parse.h"
#include "util/sha256.h"

namespace optiq::cli {
namespace {

namespace fs = std::filesystem;

struct TrainArgs {
  std::string model, data, valid, out;
  int64_t rank = 8;
  double alpha = 16;
  std::string rank_scaling = "uniform";
  std::string sensitivity_from;
  std::string target_modules = "q,k,v,o,gate,up,down";
  std::string lr_schedule = "constant";
  int64_t seq_len = 512;
  bool mask_prompt = false;
  int threads = 0;
  train::TrainOptions opts;
};

// Per adapted weight, the signal the rank rule reads, and where it came from.
struct RankSignals {
  std::map<std::string, double> values;  // GGUF weight name -> bits per weight or KL (nats)
  std::string source;                    // the file the values came from
};

RankSignals rank_signals(train::RankScaling rule, const std::string& from, const engine::Model& model,
                         const std::string& model_path) {
  switch (rule) {
    case train::RankScaling::Uniform: return {};
    case train::RankScaling::ByBits: {
      if (from.empty()) return {train::bits_per_weight_of(model), model_path + " (stored types)"};
      const fs::path report = fs::is_directory(from) ? fs::path(from) / "optiq-report.json" : fs::path(from);
      return {train::bits_from_report(report), report.string()};
    }
    case train::RankScaling::ByKl:
      if (from.empty())
        throw InputError("--rank-scaling", std::nullopt, "by_kl needs --sensitivity-from CONVERT_DIR (an optiq convert output folder)");
      return {train::kl_from_convert_dir(from), from};
  }
  return {};
}

std::vector<train::Module> parse_modules(const std::string& list) {
  std::vector<train::Module> out;
  for (const std::string& name : split_list(list, "--target-modules")) {
    const auto m = train::parse_module(name);
    if (!m) throw InputError("--target-modules", std::nullopt, "\"" + name + "\" is not one of q, k, v, o, gate, up, down");
    if (std::find(out.begin(), out.end(), *m) == out.end()) out.push_back(*m);
  }
  if (out.empty()) throw InputError("--target-modules", std::nullopt, "no modules given");
  return out;
}

void hash_file(Sha256& h, const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) h.update(buf, static_cast<size_t>(in.gcount()));
}

int run_train(const TrainArgs& a) {
  if (a.threads > 0) engine::set_num_threads(a.threads);
  const auto rule = train::parse_rank_scaling(a.rank_scaling);
  if (!rule) throw InputError("--rank-scaling", std::nullopt, "\"" + a.rank_scaling + "\" is not uniform, by_bits or by_kl");
  train::TrainOptions opts = a.opts;
  const auto schedule = train::parse_lr_schedule(a.lr_schedule);
  if (!schedule) throw InputError("--lr-schedule", std::nullopt, "\"" + a.lr_schedule + "\" is not constant or cosine");
  opts.schedule = *schedule;
  if (opts.iters == 0 && opts.epochs == 0) opts.epochs = 1;
  const std::vector<train::Module> modules = parse_modules(a.target_modules);

  const std::string path = resolve_model_argument(a.model);
  const ModelSource source = open_model_source(path);
  const engine::Model model = engine::load_model(source);
  const Tokenizer tok = load_tokenizer(path);
  const std::optional<ChatTemplate> tmpl = calib::find_chat_template(path);  // none: the data reader says if it needed one
  const int64_t seq_len = std::min(a.seq_len, model.hp.n_ctx_train);
  const std::optional<fs::path> valid_path = a.valid.empty() ? std::nullopt : std::optional<fs::path>(a.valid);
  const train::TrainingData data =
      train::read_training_data(a.data, valid_path, tok, tmpl ? &*tmpl : nullptr, a.mask_prompt, seq_len);
  if (data.train.n_truncated)
    std::fprintf(stderr, "warning: %lld training examples were longer than --seq-len %lld and were cut\n",
                 static_cast<long long>(data.train.n_truncated), static_cast<long long>(seq_len));

  // Ranks: the rule's share of uniform's parameter count for every adapted projection.
  const RankSignals signals = rank_signals(*rule, a.sensitivity_from, model, path);
  std::vector<train::RankTarget> targets;
  std::vector<train::AdapterEntry> entries;
  for (int64_t il = 0; il < model.hp.n_layer; ++il)
    for (train::Module m : modules) {
      const engine::Weight& w = train::module_weight(model.layers[static_cast<size_t>(il)], m);
      double signal = 0;
      if (*rule != train::RankScaling::Uniform) {
        const auto it = signals.values.find(w.name);
        if (it == signals.values.end())
          throw InputError(signals.source, std::nullopt, "has no " + std::string(train::rank_scaling_name(*rule)) + " value for " + w.name);
        signal = it->second;
      }
      targets.push_back({w.name, w.n_in, w.n_out, signal});
      entries.push_back({il, m, 0});
    }
  if (*rule != train::RankScaling::Uniform &&
      std::all_of(targets.begin(), targets.end(), [&](const train::RankTarget& t) { return t.signal == targets.front().signal; }))
    std::fprintf(stderr, "note: every adapted projection has the same %s value in %s: the ranks are uniform's\n",
                 std::string(train::rank_scaling_name(*rule)).c_str(), signals.source.c_str());
  const std::vector<int64_t> ranks = train::allocate_ranks(targets, a.rank, *rule);
  for (size_t i = 0; i < entries.size(); ++i) entries[i].rank = ranks[i];
  train::TrainableAdapter<float> factors = train::init_adapter(model, entries, a.alpha, a.rank, opts.seed);

  const int64_t total = train::total_steps(opts, static_cast<int64_t>(data.train.examples.size()));
  nlohmann::json hyper = {{"rank", a.rank}, {"alpha", a.alpha}, {"iters", total}, {"epochs", opts.epochs},
                          {"batch_size", opts.batch_size}, {"grad_accum", opts.grad_accum}, {"seq_len", seq_len},
                          {"lr", opts.lr}, {"lr_schedule", a.lr_schedule}, {"warmup", opts.warmup},
                          {"weight_decay", opts.adamw.weight_decay}, {"grad_clip", opts.grad_clip},
                          {"mask_prompt", a.mask_prompt}, {"grad_checkpoint", opts.grad_checkpoint},
                          {"seed", opts.seed}, {"adam_betas", {opts.adamw.beta1, opts.adamw.beta2}}, {"adam_eps", opts.adamw.eps}};
  nlohmann::json rank_json = nlohmann::json::object(), signal_json = nlohmann::json::object();
  int64_t n_params = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    rank_json[targets[i].name] = ranks[i];
    if (*rule != train::RankScaling::Uniform) signal_json[targets[i].name] = targets[i].signal;
    n_params += ranks[i] * (targets[i].n_in + targets[i].n_out);
  }
  std::vector<std::string> module_names;
  for (train::Module m : modules) module_names.emplace_back(train::module_name(m));
  // What the factors depend on: a resume file of anything else is refused.
  Sha256 h;
  h.update(path + "\n" + std::to_string(fs::file_size(fs::is_directory(path) ? fs::path(path) / "config.json" : fs::path(path))) + "\n");
  hash_file(h, data.train.path);
  if (data.valid) hash_file(h, data.valid->path);
  h.update(hyper.dump() + rank_json.dump() + nlohmann::json(module_names).dump());
  const std::string fingerprint = h.hex();

  fs::create_directories(a.out);
  std::fprintf(stderr, "training %zu projections (%s rank rule, base rank %lld): %lld parameters, %lld steps of %lld examples\n",
               factors.size(), a.rank_scaling.c_str(), static_cast<long long>(a.rank), static_cast<long long>(n_params),
               static_cast<long long>(total), static_cast<long long>(opts.batch_size * opts.grad_accum));
  const train::TrainRecord record = train::train_adapter(model, factors, data.train.examples,
                                                         data.valid ? data.valid->examples : std::vector<train::Example>{},
                                                         opts, fs::path(a.out) / train::kTrainStateFile, fingerprint);
  nlohmann::json training = train::record_to_json(record);
  training["tokens_per_second"] = record.train_seconds > 0 ? static_cast<double>(record.tokens_processed) / record.train_seconds : 0.0;
  training["threads"] = engine::num_threads();
  const nlohmann::json config = {
      {"format", "optiq-lora-train"},
      {"version", 1},
      {"base_model", path},
      {"architecture", std::string(arch_gguf_name(model.hp.arch))},
      {"target_modules", module_names},
      {"rank_rule", {{"rule", a.rank_scaling}, {"base_rank", a.rank}, {"alpha", a.alpha},
                     {"source", signals.source}, {"signals", signal_json}}},
      {"ranks", rank_json},
      {"n_params", n_params},
      {"data", {{"train", data.train.path}, {"valid", data.valid ? data.valid->path : ""}, {"format", data.train.format},
                {"n_train", data.train.examples.size()}, {"n_valid", data.valid ? data.valid->examples.size() : 0},
                {"n_truncated", data.train.n_truncated}}},
      {"hyperparameters", hyper},
      {"training", training}};
  train::write_train_outputs(a.out, factors, model, path, a.rank, a.alpha, config);
  std::fprintf(stderr, "wrote %s: adapter_config.json, adapter_model.safetensors, %s, %s\n", a.out.c_str(),
               train::kGgufAdapterFile, train::kTrainConfigFile);
  return 0;
}

int run_info(const std::string& dir) {
  const fs::path file = fs::path(dir) / train::kTrainConfigFile;
  const nlohmann::json c = read_json_file(file);
  try {
    const auto& rr = c.at("rank_rule");
    std::printf("adapter %s\n  base model   %s (%s)\n  rank rule    %s, base rank %lld, alpha %g%s%s\n", dir.c_str(),
                c.at("base_model").get<std::string>().c_str(), c.at("architecture").get<std::string>().c_str(),
                rr.at("rule").get<std::string>().c_str(), static_cast<long long>(rr.at("base_rank").get<int64_t>()),
                rr.at("alpha").get<double>(), rr.at("source").get<std::string>().empty() ? "" : ", from ",
                rr.at("source").get<std::string>().c_str());
    const auto& ranks = c.at("ranks");
    std::printf("  parameters   %lld in %zu projections (%.2f MiB as f32)\n",
                static_cast<long long>(c.at("n_params").get<int64_t>()), ranks.size(),
                static_cast<double>(c.at("n_params").get<int64_t>()) * 4 / (1 << 20));
    // Ranks as a layer x module table.
    std::vector<std::string> modules = c.at("target_modules").get<std::vector<std::string>>();
    std::printf("\n  %-6s", "layer");
    for (const auto& m : modules) std::printf(" %5s", m.c_str());
    std::printf("\n");
    for (int64_t il = 0;; ++il) {
      bool any = false;
      std::string line;
      for (const auto& m : modules) {
        const auto module = train::parse_module(m);
        if (!module) throw InputError(file.string(), std::nullopt, "target_modules holds \"" + m + "\"");
        const std::string key = "blk." + std::to_string(il) + "." + std::string(train::module_gguf_name(*module)) + ".weight";
        char cell[16];
        if (ranks.contains(key)) any = true, std::snprintf(cell, sizeof cell, " %5lld", static_cast<long long>(ranks[key].get<int64_t>()));
        else std::snprintf(cell, sizeof cell, " %5s", "-");
        line += cell;
      }
      if (!any) break;
      std::printf("  %-6lld%s\n", static_cast<long long>(il), line.c_str());
    }
    const auto& t = c.at("training");
    const auto& curve = t.at("train_curve");
    const auto& valid = t.at("valid_curve");
    const auto& d = c.at("data");
    std::printf("\n  data         %s (%s, %lld examples), validation %s (%lld examples)\n", d.at("train").get<std::string>().c_str(),
                d.at("format").get<std::string>().c_str(), static_cast<long long>(d.at("n_train").get<int64_t>()),
                d.at("valid").get<std::string>().empty() ? "none" : d.at("valid").get<std::string>().c_str(),
                static_cast<long long>(d.at("n_valid").get<int64_t>()));
    std::printf("  training     %lld steps", static_cast<long long>(t.at("steps").get<int64_t>()));
    if (!curve.empty())
      std::printf(", train loss %.4f at step 1, %.4f at the end", curve.front().at("loss").get<double>(),
                  curve.back().at("loss").get<double>());
    std::printf("\n");
    if (!valid.empty())
      std::printf("  validation   loss %.4f at step %lld, %.4f at step %lld\n", valid.front().at("loss").get<double>(),
                  static_cast<long long>(valid.front().at("step").get<int64_t>()), valid.back().at("loss").get<double>(),
                  static_cast<long long>(valid.back().at("step").get<int64_t>()));
    const auto& s = t.at("seconds");
    std::printf("  speed        %.0f tokens/s on %d threads; seconds: forward %.1f, head %.1f, backward %.1f, optimizer %.1f, eval %.1f\n",
                t.at("tokens_per_second").get<double>(), t.at("threads").get<int>(), s.at("forward").get<double>(),
                s.at("head").get<double>(), s.at("backward").get<double>(), s.at("optimizer").get<double>(),
                s.at("eval").get<double>());
  } catch (const nlohmann::json::exception& e) {
    throw InputError(file.string(), std::nullopt, std::string("not an optiq lora train config: ") + e.what());
  }
  return 0;
}

}  // namespace

Command add_lora_train(CLI::App& lora) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* t = lora.add_subcommand("train", "Train a LoRA adapter on a frozen base model (quantized GGUFs stay quantized)");
  t->add_option("model", a->model, ".gguf file, Hugging Face folder, or hub id")->required();
  t->add_option("--data", a->data, "JSONL of {\"text\"}, {\"prompt\",\"completion\"} or {\"messages\"} lines, or a folder with train.jsonl (and valid.jsonl)")->required();
  t->add_option("--valid", a->valid, "validation JSONL (default: valid.jsonl in the --data folder)");
  t->add_option("-o,--output", a->out, "output folder: PEFT adapter, adapter.gguf, optiq_lora_config.json, resume state")->required();
  t->add_option("--rank", a->rank, "LoRA rank (the average under a rank rule: same parameter count)")->check(CLI::Range(1, 1024));
  t->add_option("--alpha", a->alpha, "LoRA alpha: every projection is scaled by alpha / rank")->check(CLI::PositiveNumber);
  t->add_option("--rank-scaling", a->rank_scaling, "uniform, by_bits (rank in proportion to the stored bits per weight) or by_kl (to sqrt of measured KL)");
  t->add_option("--sensitivity-from", a->sensitivity_from, "by_bits: an optiq convert folder or its optiq-report.json (default: the model's own types); by_kl: the convert folder");
  t->add_option("--target-modules", a->target_modules, "projections to adapt, comma-separated from q,k,v,o,gate,up,down");
  auto* iters = t->add_option("--iters", a->opts.iters, "optimizer steps")->check(CLI::PositiveNumber);
  t->add_option("--epochs", a->opts.epochs, "passes over the training data (default 1 when --iters is not given)")->check(CLI::PositiveNumber)->excludes(iters);
  t->add_option("--batch-size", a->opts.batch_size, "examples per micro-batch (default 4)")->check(CLI::Range(1, 4096));
  t->add_option("--grad-accum", a->opts.grad_accum, "micro-batches per optimizer step (default 1)")->check(CLI::Range(1, 4096));
  t->add_option("--seq-len", a->seq_len, "longest example in tokens; longer ones are cut (default 512)")->check(CLI::Range(2, 1 << 20));
  t->add_option("--lr", a->opts.lr, "peak learning rate (default 1e-4)")->check(CLI::PositiveNumber);
  t->add_option("--lr-schedule", a->lr_schedule, "constant or cosine (to 0 at the last step)");
  t->add_option("--warmup", a->opts.warmup, "steps of linear warm-up (default 0)")->check(CLI::NonNegativeNumber);
  t->add_option("--weight-decay", a->opts.adamw.weight_decay, "AdamW's decoupled weight decay (default 0)")->check(CLI::NonNegativeNumber);
  t->add_option("--grad-clip", a->opts.grad_clip, "largest global gradient norm, 0 = none (default 1)")->check(CLI::NonNegativeNumber);
  t->add_flag("--mask-prompt", a->mask_prompt, "train on the completion / last assistant message only");
  t->add_flag("--grad-checkpoint", a->opts.grad_checkpoint, "keep only block inputs, recompute activations in the backward pass (less memory)");
  t->add_option("--save-every", a->opts.save_every, "steps between resume states (default 100)")->check(CLI::NonNegativeNumber);
  t->add_option("--eval-every", a->opts.eval_every, "steps between validation losses (default 50)")->check(CLI::NonNegativeNumber);
  t->add_option("--val-batches", a->opts.val_batches, "validation micro-batches per evaluation, 0 = all (default 25)")->check(CLI::NonNegativeNumber);
  t->add_option("--seed", a->opts.seed, "initialisation and data order (default 0)");
  t->add_option("-t,--threads", a->threads, "threads (default: the number of cores)")->check(CLI::PositiveNumber);
  return {t, [a] { return run_train(*a); }};
}

Command add_lora_info(CLI::App& lora) {
  auto dir = std::make_shared<std::string>();
  CLI::App* i = lora.add_subcommand("info", "Ranks per layer and module, parameter count and training summary of a trained adapter");
  i->add_option("dir", *dir, "the folder optiq lora train wrote")->required();
  return {i, [dir] { return run_info(*dir); }};
}

}  // namespace optiq::cli
