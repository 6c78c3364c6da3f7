#include "io/ggml_type_label.h"
#include "eval/latency_calibrate.h"

#include <algorithm>
#include <ctime>
#include <random>
#include <type_traits>

#include "quant/recipe.h"
#include "sensitivity/tensor_kl.h"

namespace optiq::eval {
namespace {

// The weights a decoded token reads (as decode_bytes counts them); M is Model or const Model.
template <class M>
auto matmul_weights(M& model) {
  using W = std::conditional_t<std::is_const_v<M>, const engine::Weight, engine::Weight>;
  std::vector<W*> out = {&model.token_embd};
  for (auto& l : model.layers)
    for (W* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) out.push_back(w);
  if (model.output.n_out) out.push_back(&model.output);
  return out;
}

GgmlType fitted(const engine::Weight& w, GgmlType type) {
  bool fell_back = false;
  return fit_row(type, {w.name, {static_cast<uint64_t>(w.n_in), static_cast<uint64_t>(w.n_out)}, w.type}, fell_back);
}

}  // namespace

WeightTypes uniform_weight_types(const engine::Model& model, GgmlType type) {
  WeightTypes out;
  for (const engine::Weight* w : matmul_weights(model)) out[w->name] = fitted(*w, type);
  return out;
}

WeightTypes random_weight_types(const engine::Model& model, const std::vector<GgmlType>& types, uint64_t seed) {
  std::mt19937_64 rng(seed);
  WeightTypes out;
  for (const engine::Weight* w : matmul_weights(model))
    out[w->name] = fitted(*w, types[std::uniform_int_distribution<size_t>(0, types.size() - 1)(rng)]);
  return out;
}

engine::Model retyped_model(const engine::Model& model, const WeightTypes& types) {
  engine::Model copy = model;
  for (engine::Weight* w : matmul_weights(copy)) {
    const auto it = types.find(w->name);
    if (it != types.end() && it->second != w->type) *w = sensitivity::quantized_copy(*w, it->second, nullptr);
  }
  return copy;
}

double measure_decode_seconds(const engine::Model& model, int64_t n_gen, int repetitions, bool cpu_time) {
  auto now = [cpu_time] {
    timespec ts{};
    ::clock_gettime(cpu_time ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
  };
  std::vector<float> logits(static_cast<size_t>(model.hp.n_vocab));
  std::vector<double> seconds;
  for (int rep = -1; rep < repetitions; ++rep) {  // rep -1: one untimed warm-up token
    engine::KVCache cache = engine::make_kv_cache(model, n_gen + 1);
    const int64_t n = rep < 0 ? 1 : n_gen;
    const double t0 = now();
    for (int64_t i = 0; i < n; ++i) {
      // A fixed sequence spread over the vocabulary.
      const int32_t id[1] = {static_cast<int32_t>((i * 7919 + 13) % model.hp.n_vocab)};
      engine::forward(model, cache, id, false, logits.data());
    }
    if (rep >= 0) seconds.push_back((now() - t0) / static_cast<double>(n));
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

Calibration calibrate_latency(const engine::Model& model, const CalibrationOptions& options,
                              const std::function<void(const CalibrationRecord&)>& on_run) {
  Calibration c;
  auto run = [&](const std::string& label, const WeightTypes& types) {
    const engine::Model m = retyped_model(model, types);
    CalibrationRecord r;
    r.label = label;
    r.bytes = decode_bytes(m);
    r.seconds = measure_decode_seconds(m, options.n_gen, options.repetitions, options.cpu_time);
    c.runs.push_back(r);
    if (on_run) on_run(r);
  };
  for (GgmlType t : options.types) run("uniform " + ggml_type_label(t), uniform_weight_types(model, t));
  for (int i = 0; i < options.n_random_mixes; ++i)
    run("random mix " + std::to_string(i + 1), random_weight_types(model, options.types, 1000 + static_cast<uint64_t>(i)));
  std::vector<TypeBytes> bytes;
  std::vector<double> seconds;
  for (const auto& r : c.runs) bytes.push_back(r.bytes), seconds.push_back(r.seconds);
  c.fit = fit_latency(bytes, seconds);
  return c;
}

}  // namespace optiq::eval
