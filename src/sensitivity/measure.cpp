#include "sensitivity/measure.h"

#include <chrono>
#include <stdexcept>

#include "util/progress.h"
#include "util/sha256.h"

namespace optiq::sensitivity {
namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

const engine::Weight& weight_by_name(const engine::Model& model, const std::string& name) {
  if (model.token_embd.name == name) return model.token_embd;
  if (model.output.n_out && model.output.name == name) return model.output;
  for (const auto& layer : model.layers)
    for (const engine::Weight* w : {&layer.wq, &layer.wk, &layer.wv, &layer.wo, &layer.ffn_gate,
                                    &layer.ffn_up, &layer.ffn_down})
      if (w->name == name) return *w;
  throw std::invalid_argument(name + " is not a weight of the loaded model");
}

engine::Weight& weight_by_name(engine::Model& model, const std::string& name) {
  return const_cast<engine::Weight&>(weight_by_name(static_cast<const engine::Model&>(model), name));
}

const float* importance_for(const std::map<std::string, std::vector<float>>& importance, const engine::Weight& w) {
  const auto it = importance.find(w.name);
  return it != importance.end() && it->second.size() == static_cast<size_t>(w.n_in) ? it->second.data() : nullptr;
}

MeasureStats measure_sensitivity(const engine::Model& model, const TensorKL& kl,
                                 const std::vector<MeasureJob>& jobs,
                                 const std::map<std::string, std::vector<float>>& importance,
                                 bool from_source, SensitivityCheckpoint& checkpoint) {
  MeasureStats stats;
  uint64_t total = 0;
  for (const auto& job : jobs)
    for (GgmlType type : job.types) {
      ++total;
      if (checkpoint.find(job.source->name, type)) ++stats.resumed;
    }
  ProgressBar bar("sensitivity", total, 1, "measurements", std::nullopt, stats.resumed);
  uint64_t done = stats.resumed;
  bar.update(done);
  for (const auto& job : jobs) {
    const engine::Weight& w = weight_by_name(model, job.source->name);
    const float* imp_data = importance_for(importance, w);
    for (GgmlType type : job.types) {
      if (checkpoint.find(w.name, type)) continue;
      const auto t0 = std::chrono::steady_clock::now();
      const engine::Weight q = candidate_weight(w, *job.source, type, imp_data, from_source);
      const double t_quant = seconds_since(t0);
      const auto t1 = std::chrono::steady_clock::now();
      const double value = kl.measure(w, q);
      const double t_forward = seconds_since(t1);
      checkpoint.add(w.name, type, value, t_quant + t_forward);
      stats.quantize_seconds += t_quant;
      stats.forward_seconds += t_forward;
      ++stats.measured;
      bar.update(++done);
    }
  }
  bar.finish();
  return stats;
}

std::string model_fingerprint(const ModelSource& source) {
  Sha256 sha;
  for (const auto& t : source.tensors) {
    sha.update(t.name);
    sha.update(ggml_type_name(t.type));
    for (uint64_t d : t.shape) sha.update(&d, sizeof d);
    sha.update(t.data.data(), t.data.size());
  }
  return sha.hex();
}

std::string tokens_fingerprint(const std::vector<std::vector<int32_t>>& sequences) {
  Sha256 sha;
  for (const auto& seq : sequences) {
    const uint64_t n = seq.size();
    sha.update(&n, sizeof n);
    sha.update(seq.data(), seq.size() * sizeof(int32_t));
  }
  return sha.hex();
}

}  // namespace optiq::sensitivity
