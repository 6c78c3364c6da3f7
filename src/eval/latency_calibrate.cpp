#include "io/ggml_type_label.h"
#include "eval/latency_calibrate.h"

#include <algorithm>
#include <chrono>
#include <random>
#include <type_traits>

#include "eval/speed.h"
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

double measure_decode_seconds(const engine::Model& model, int64_t n_gen, int repetitions) {
  SpeedOptions warm;
  warm.n_prompt = 0;
  warm.n_gen = 1;
  warm.repetitions = 1;
  measure_speed(model, warm);
  SpeedOptions o;
  o.n_prompt = 0;
  o.n_gen = n_gen;
  o.repetitions = repetitions;
  std::vector<double> seconds;
  for (double tps : measure_speed(model, o).decode_tps) seconds.push_back(1.0 / tps);
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
    r.seconds = measure_decode_seconds(m, options.n_gen, options.repetitions);
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
