#include "export/speed_budget.h"

#include <cmath>
#include <map>

#include "util/error.h"

namespace optiq {

eval::LatencyFit latency_fit_for(const engine::Model& model, int threads, const std::filesystem::path& cache) {
  const eval::LatencyKey key{eval::cpu_model_name(), threads, eval::model_shape(model.hp), 0};
  const std::filesystem::path file = cache.empty() ? eval::default_latency_cache() : cache;
  const auto fit = eval::load_latency_fit(file, key);
  if (!fit)
    throw InputError(file.string(), std::nullopt,
                     "has no latency calibration for " + key.text() + ": run `optiq latency MODEL --calibrate -t " +
                         std::to_string(threads) + "` first (or give --tps-threads / --latency-cache)");
  return *fit;
}

SpeedBudget speed_budget(const engine::Model& model, const eval::LatencyFit& fit,
                         const std::vector<alloc::TensorChoices>& choices, double target_tps) {
  std::map<std::string, eval::DecodeWeight> weights;
  for (const auto& d : eval::decode_weights(model)) weights[d.weight->name] = d;
  SpeedBudget s;
  s.fixed_seconds = fit.overhead_seconds;
  for (const auto& tc : choices) {
    std::vector<uint64_t> times;
    const auto it = weights.find(tc.name);
    for (const auto& c : tc.candidates) {
      double seconds = 0;  // a tensor no decoded token reads costs no time
      if (it != weights.end())
        seconds = fit.predict_seconds({{c.type, eval::weight_bytes_per_token(c.type, it->second.weight->n_in,
                                                                             it->second.weight->n_out, it->second.lookup)}}) -
                  fit.overhead_seconds;
      times.push_back(static_cast<uint64_t>(std::llround(seconds * kPicosecondsPerSecond)));
    }
    if (it != weights.end()) weights.erase(it);
    s.time_ps.push_back(std::move(times));
  }
  for (const auto& [name, d] : weights)
    s.fixed_seconds += fit.predict_seconds({{d.weight->type, eval::weight_bytes_per_token(d.weight->type, d.weight->n_in,
                                                                                        d.weight->n_out, d.lookup)}}) -
                       fit.overhead_seconds;
  const double budget = 1.0 / target_tps - s.fixed_seconds;
  if (budget <= 0)
    throw InputError("--target-tps", std::nullopt,
                     "the latency model's fixed time alone (" + std::to_string(1e3 * s.fixed_seconds) +
                         " ms per token) is slower than the target");
  s.budget_ps = static_cast<uint64_t>(budget * kPicosecondsPerSecond);
  return s;
}

double predicted_tps(const SpeedBudget& s, const std::vector<size_t>& choice) {
  double seconds = s.fixed_seconds;
  for (size_t i = 0; i < choice.size(); ++i) seconds += static_cast<double>(s.time_ps[i][choice[i]]) / kPicosecondsPerSecond;
  return 1.0 / seconds;
}

}  // namespace optiq
