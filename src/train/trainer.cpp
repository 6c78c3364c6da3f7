#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>

#include "train/train_state.h"
#include "util/error.h"

namespace optiq::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// A uniform double in [0, 1) from 53 bits of the generator (the same on every platform, unlike
// std::uniform_real_distribution).
double unit_uniform(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }

// The order of the training examples in epoch `epoch`: a Fisher-Yates shuffle seeded by the
// run's seed and the epoch, so any step's examples are known without replaying earlier steps.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
  for (int64_t i = n - 1; i > 0; --i)
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(rng() % static_cast<uint64_t>(i + 1))]);
  return order;
}

// Labels of an example: row i predicts token i+1 when that token is trained on.
std::vector<int32_t> labels_of(const Example& e) {
  std::vector<int32_t> labels(e.tokens.size(), -1);
  for (size_t i = 0; i + 1 < e.tokens.size(); ++i)
    if (static_cast<int64_t>(i + 1) >= std::max<int64_t>(1, e.n_prompt)) labels[i] = e.tokens[i + 1];
  return labels;
}

int64_t trained_tokens(const Example& e) {
  return static_cast<int64_t>(e.tokens.size()) - std::max<int64_t>(1, e.n_prompt);
}

// Σ loss and trained tokens of `batch`; gradients scaled by `weight` when asked.
struct BatchLoss {
  double sum = 0;
  int64_t tokens = 0;
};
BatchLoss run_batch(const engine::Model& model, TrainableAdapter<float>& adapter, const std::vector<const Example*>& batch,
                    bool gradients, double weight, bool checkpoint, PassTimes* times) {
  std::vector<std::vector<int32_t>> labels;
  std::vector<TrainSequence> seqs;
  BatchLoss r;
  labels.reserve(batch.size());
  for (const Example* e : batch) {
    labels.push_back(labels_of(*e));
    seqs.push_back({e->tokens, labels.back()});
    r.tokens += trained_tokens(*e);
  }
  r.sum = lora_loss(model, adapter, seqs, gradients, weight, checkpoint, times);
  return r;
}

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s / 3600), static_cast<int>(s / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s / 60), static_cast<int>(s) % 60);
  return buf;
}

}  // namespace

int64_t total_steps(const TrainOptions& o, int64_t n_train) {
  if (o.iters > 0) return o.iters;
  const double examples_per_step = static_cast<double>(o.batch_size * o.grad_accum);
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(o.epochs * static_cast<double>(n_train) / examples_per_step)));
}

TrainableAdapter<float> init_adapter(const engine::Model& model, const std::vector<AdapterEntry>& entries, double alpha,
                                     int64_t base_rank, uint64_t seed) {
  TrainableAdapter<float> adapter;
  for (const AdapterEntry& e : entries) {
    const engine::Weight& w = module_weight(model.layers[static_cast<size_t>(e.layer)], e.module);
    LoraFactors<float> f;
    f.target = &w, f.layer = e.layer, f.module = e.module;
    f.shape = {w.n_in, w.n_out, e.rank, static_cast<float>(alpha / static_cast<double>(base_rank))};
    // Each factor's own stream (seeded by an FNV-1a hash of its name, the same on every
    // platform): adding or dropping a module leaves the others' draws alone.
    uint64_t name_hash = 0xcbf29ce484222325ULL;
    for (const char c : w.name) name_hash = (name_hash ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
    std::mt19937_64 rng(seed ^ name_hash);
    const double bound = 1.0 / std::sqrt(static_cast<double>(w.n_in));
    f.a.resize(static_cast<size_t>(e.rank * w.n_in));
    for (float& v : f.a) v = static_cast<float>((2.0 * unit_uniform(rng) - 1.0) * bound);
    f.b.assign(static_cast<size_t>(w.n_out * e.rank), 0.0f);
    f.grad_a.assign(f.a.size(), 0.0f);
    f.grad_b.assign(f.b.size(), 0.0f);
    adapter.push_back(std::move(f));
  }
  return adapter;
}

double mean_loss(const engine::Model& model, TrainableAdapter<float>& adapter, std::span<const Example> examples,
                 int64_t batch_size) {
  double sum = 0;
  int64_t tokens = 0;
  for (size_t i = 0; i < examples.size(); i += static_cast<size_t>(batch_size)) {
    std::vector<const Example*> batch;
    for (size_t j = i; j < std::min(examples.size(), i + static_cast<size_t>(batch_size)); ++j) batch.push_back(&examples[j]);
    const BatchLoss b = run_batch(model, adapter, batch, false, 0.0, false, nullptr);
    sum += b.sum, tokens += b.tokens;
  }
  return tokens ? sum / static_cast<double>(tokens) : 0.0;
}

TrainRecord train_adapter(const engine::Model& model, TrainableAdapter<float>& adapter, const std::vector<Example>& train,
                          const std::vector<Example>& valid, const TrainOptions& opts,
                          const std::filesystem::path& state_path, const std::string& fingerprint) {
  if (train.empty()) throw std::invalid_argument("train_adapter: no training examples");
  const auto n_train = static_cast<int64_t>(train.size());
  const int64_t total = total_steps(opts, n_train);
  TrainState state;
  state.fingerprint = fingerprint;
  state.moments.resize(adapter.size());
  for (size_t i = 0; i < adapter.size(); ++i) {
    state.moments[i].m_a.assign(adapter[i].a.size(), 0.0f), state.moments[i].v_a = state.moments[i].m_a;
    state.moments[i].m_b.assign(adapter[i].b.size(), 0.0f), state.moments[i].v_b = state.moments[i].m_b;
  }
  if (const auto saved = train_state_fingerprint(state_path)) {
    if (*saved != fingerprint)
      throw InputError(state_path.string(), std::nullopt,
                       "holds a training run of another model, data or options; give another output folder or delete "
                       "this file to start over");
    state = load_train_state(state_path, adapter);
    if (opts.report) std::fprintf(stderr, "resuming from step %lld of %lld (%s)\n", static_cast<long long>(state.step),
                                  static_cast<long long>(total), state_path.string().c_str());
  }
  TrainRecord& rec = state.record;
  rec.total_steps = total;
  rec.resumed_from = state.step;
  rec.times = {}, rec.optimizer_seconds = rec.eval_seconds = rec.train_seconds = 0, rec.tokens_processed = 0;

  // The validation examples one evaluation reads.
  const std::span<const Example> valid_used = std::span(valid).first(
      opts.val_batches > 0 ? std::min<size_t>(valid.size(), static_cast<size_t>(opts.val_batches * opts.batch_size)) : valid.size());
  auto evaluate = [&](int64_t step) {
    if (valid_used.empty()) return;
    const auto t0 = Clock::now();
    const double loss = mean_loss(model, adapter, valid_used, opts.batch_size);
    rec.eval_seconds += seconds_since(t0);
    rec.valid_curve.push_back({step, loss});
    if (opts.report) std::fprintf(stderr, "step %lld: validation loss %.4f\n", static_cast<long long>(step), loss);
  };
  if (state.step == 0) evaluate(0);

  std::vector<int64_t> order;
  int64_t order_epoch = -1;
  auto example_at = [&](int64_t g) -> const Example* {  // the g-th example drawn since step 0
    if (g / n_train != order_epoch) order_epoch = g / n_train, order = epoch_order(n_train, opts.seed, order_epoch);
    return &train[static_cast<size_t>(order[static_cast<size_t>(g % n_train)])];
  };
  const auto start = Clock::now();
  const int64_t per_step = opts.batch_size * opts.grad_accum;
  while (state.step < total) {
    const int64_t step = state.step;  // 0-based index of the step being taken
    const auto t0 = Clock::now();
    // The step's micro-batches, and the trained tokens over all of them (the loss is their mean).
    std::vector<std::vector<const Example*>> micro(static_cast<size_t>(opts.grad_accum));
    int64_t step_tokens = 0;
    for (int64_t i = 0; i < per_step; ++i) {
      const Example* e = example_at(step * per_step + i);
      micro[static_cast<size_t>(i / opts.batch_size)].push_back(e);
      step_tokens += trained_tokens(*e);
    }
    for (auto& f : adapter) std::fill(f.grad_a.begin(), f.grad_a.end(), 0.0f), std::fill(f.grad_b.begin(), f.grad_b.end(), 0.0f);
    double loss_sum = 0;
    for (const auto& batch : micro) {
      loss_sum += run_batch(model, adapter, batch, true, 1.0 / static_cast<double>(step_tokens), opts.grad_checkpoint,
                            &rec.times).sum;
      for (const Example* e : batch) rec.tokens_processed += static_cast<int64_t>(e->tokens.size());
    }
    const auto t_opt = Clock::now();
    double norm2 = 0;
    for (const auto& f : adapter) {
      for (float g : f.grad_a) norm2 += static_cast<double>(g) * g;
      for (float g : f.grad_b) norm2 += static_cast<double>(g) * g;
    }
    const double norm = std::sqrt(norm2);
    if (opts.grad_clip > 0 && norm > opts.grad_clip) {
      const auto c = static_cast<float>(opts.grad_clip / norm);
      for (auto& f : adapter) {
        for (float& g : f.grad_a) g *= c;
        for (float& g : f.grad_b) g *= c;
      }
    }
    const double lr = learning_rate(opts.schedule, opts.lr, opts.warmup, step, total);
    for (size_t i = 0; i < adapter.size(); ++i) {
      adamw_update(opts.adamw, lr, step + 1, adapter[i].a, adapter[i].grad_a, state.moments[i].m_a, state.moments[i].v_a);
      adamw_update(opts.adamw, lr, step + 1, adapter[i].b, adapter[i].grad_b, state.moments[i].m_b, state.moments[i].v_b);
    }
    rec.optimizer_seconds += seconds_since(t_opt);
    rec.train_seconds += seconds_since(t0);
    state.step = rec.steps = step + 1;
    const int64_t tokens_so_far = (rec.train_curve.empty() ? 0 : rec.train_curve.back().tokens) + step_tokens;
    rec.train_curve.push_back({state.step, loss_sum / static_cast<double>(step_tokens), lr, norm, tokens_so_far});
    const bool last = state.step == total;
    if (opts.report && (state.step % 10 == 0 || state.step == 1 || last)) {
      const double elapsed = seconds_since(start);
      const double per = elapsed / static_cast<double>(state.step - rec.resumed_from);
      std::fprintf(stderr, "step %lld/%lld: train loss %.4f, lr %.2e, grad norm %.3f, %.0f tok/s, ETA %s\n",
                   static_cast<long long>(state.step), static_cast<long long>(total), rec.train_curve.back().loss, lr,
                   norm, static_cast<double>(rec.tokens_processed) / rec.train_seconds,
                   format_duration(per * static_cast<double>(total - state.step)).c_str());
    }
    if (last || (opts.eval_every > 0 && state.step % opts.eval_every == 0)) evaluate(state.step);
    if (last || (opts.save_every > 0 && state.step % opts.save_every == 0)) save_train_state(state_path, adapter, state);
  }
  return rec;
}

}  // namespace optiq::train
