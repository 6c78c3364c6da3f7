#include "kv/kv_report.h"

#include <cstdio>
#include <limits>

#include "engine/kv_config.h"
#include "kv/kv_candidates.h"

namespace optiq::kv {
namespace {

using nlohmann::ordered_json;

std::string type_name(engine::KVType t) { return std::string(engine::kv_type_name(t)); }

double mib(uint64_t bytes) { return static_cast<double>(bytes) / 1048576.0; }

// A JSON number, or null for NaN (JSON has no NaN).
ordered_json number_or_null(double v) { return v == v ? ordered_json(v) : ordered_json(nullptr); }

}  // namespace

uint64_t KVAlternative::bytes_at(int64_t n_ctx) const {
  uint64_t b = bytes_per_position * static_cast<uint64_t>(n_ctx);
  for (const auto& l : layers)
    b += engine::kv_turbo_fixed_bytes(l.k, true, row_width, turbo_f16, n_ctx) +
         engine::kv_turbo_fixed_bytes(l.v, false, row_width, turbo_f16, n_ctx);
  return b;
}

std::vector<KVAlternative> kv_alternatives(const KVPlan& plan, int64_t n_head_kv, int64_t head_dim,
                                           const engine::TurboF16Rows& turbo_f16) {
  const size_t n_layer = plan.slots.size() / 2;
  const auto alternative = [&](std::string label, uint64_t bytes, double predicted,
                               std::vector<engine::LayerKVTypes> layers) {
    return KVAlternative{std::move(label), bytes, average_bits(plan, bytes), predicted, std::move(layers),
                         n_head_kv * head_dim, turbo_f16};
  };
  const auto uniform = [&](engine::KVType t) { return std::vector<engine::LayerKVTypes>(n_layer, {t, t}); };
  std::vector<KVAlternative> out;
  out.push_back(alternative("mixed", plan.bytes, plan.predicted, chosen_layer_types(plan)));
  const uint64_t f16 = plan.slots.size() * kv_row_bytes(engine::KVType::F16, n_head_kv, head_dim);
  out.push_back(alternative("f16", f16, std::numeric_limits<double>::quiet_NaN(), uniform(engine::KVType::F16)));
  for (size_t i = 0; i < plan.types.size(); ++i) {
    if (plan.types[i] == engine::KVType::F16) out[1].predicted = uniform_predicted(plan, i);
    else
      out.push_back(alternative("uniform " + type_name(plan.types[i]), plan.slots.size() * plan.row_bytes[i],
                                uniform_predicted(plan, i), uniform(plan.types[i])));
  }
  return out;
}

ordered_json kv_config_json(const KVPlan& plan, const engine::TurboF16Rows& turbo_f16) {
  ordered_json layers = ordered_json::array();
  bool turbo = false;
  for (const auto& l : chosen_layer_types(plan)) {
    layers.push_back({{"k", type_name(l.k)}, {"v", type_name(l.v)}});
    turbo |= engine::kv_type_is_turbo(l.k) || engine::kv_type_is_turbo(l.v);
  }
  ordered_json config = {{"layers", layers}};
  if (turbo) config["turbo_f16"] = engine::turbo_f16_json(turbo_f16);
  return config;
}

ordered_json kv_report_json(const KVPlan& plan, const KVRunInfo& info, const std::vector<KVAlternative>& alternatives) {
  ordered_json candidates = ordered_json::array();
  for (size_t i = 0; i < plan.types.size(); ++i)
    candidates.push_back({{"type", type_name(plan.types[i])},
                          {"bits", average_bits(plan, plan.slots.size() * plan.row_bytes[i])},
                          {"row_bytes", plan.row_bytes[i]}});
  ordered_json layers = ordered_json::array();
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    const KVSlot& slot = plan.slots[s];
    if (slot.part == KVPart::K) layers.push_back({{"layer", slot.layer}});
    ordered_json kl = ordered_json::object();
    for (size_t i = 0; i < plan.types.size(); ++i) kl[type_name(plan.types[i])] = plan.kl[s][i];
    layers.back()[slot.part == KVPart::K ? "k" : "v"] = {{"kl", kl}, {"chosen", type_name(plan.types[plan.chosen[s]])}};
  }
  ordered_json memory = ordered_json::array();
  for (const auto& a : alternatives) {
    ordered_json m = {{"config", a.label},
                      {"bits", a.bits},
                      {"bytes_per_position", a.bytes_per_position},
                      {"predicted_kl", number_or_null(a.predicted)}};
    for (int64_t ctx : kReportContexts) m["bytes_at_" + std::to_string(ctx / 1024) + "k"] = a.bytes_at(ctx);
    memory.push_back(m);
  }
  return {
      {"format", "optiq-kv-report"},
      {"version", 1},
      {"model", info.model},
      {"model_sha256", info.model_sha256},
      {"options",
       {{"target_bits", plan.target_bits},
        {"calibration_mix", info.calibration_mix},
        {"seq_len", info.seq_len},
        {"n_sequences", info.n_sequences},
        {"hadamard", info.hadamard},
        {"turbo_f16", engine::turbo_f16_json(info.turbo_f16)},
        {"reference", "the model as loaded with an f32 cache"}}},
      {"candidates", candidates},
      {"layers", layers},
      {"chosen",
       {{"bits", average_bits(plan, plan.bytes)},
        {"bytes_per_position", plan.bytes},
        {"budget_bytes_per_position", plan.budget_bytes},
        {"predicted_kl", plan.predicted},
        {"solver", plan.solver},
        {"proven_optimal", plan.proven_optimal}}},
      {"memory", memory},
      {"measurements", {{"measured", info.measured}, {"resumed", info.resumed}, {"seconds", info.measure_seconds}}},
  };
}

namespace {

// For keys or values: the slot where the smallest candidate adds the most KL over the largest,
// against the mean over layers. The difference cancels the floor every perturbation shares
// (on a model whose activations are coarsely quantized, any change moves the output a little).
void print_most_sensitive(const KVPlan& plan, KVPart part) {
  if (plan.types.size() < 2) return;
  double mean = 0, max = 0;
  size_t max_slot = 0, n = 0;
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    if (plan.slots[s].part != part) continue;
    const double excess = plan.kl[s].front() - plan.kl[s].back();
    mean += excess;
    ++n;
    if (excess > max) max = excess, max_slot = s;
  }
  mean /= static_cast<double>(n);
  if (mean <= 0) return;
  std::printf("most sensitive %s: %s, where %s adds %.3e nats over %s, %.1fx the mean over layers\n",
              part == KVPart::K ? "keys" : "values", kv_slot_name(plan.slots[max_slot]).c_str(),
              type_name(plan.types.front()).c_str(), max, type_name(plan.types.back()).c_str(), max / mean);
}

}  // namespace

void print_kv_summary(const KVPlan& plan, const std::vector<KVAlternative>& alternatives) {
  std::printf("%-9s", "slot");
  for (engine::KVType t : plan.types) std::printf(" %11s", type_name(t).c_str());
  std::printf("  chosen   (mean KL, nats, with only that slot quantized)\n");
  for (size_t s = 0; s < plan.slots.size(); ++s) {
    std::printf("%-9s", kv_slot_name(plan.slots[s]).c_str());
    for (size_t i = 0; i < plan.types.size(); ++i) std::printf(" %c%10.3e", i == plan.chosen[s] ? '*' : ' ', plan.kl[s][i]);
    std::printf("  %s\n", type_name(plan.types[plan.chosen[s]]).c_str());
  }
  print_most_sensitive(plan, KVPart::K);
  print_most_sensitive(plan, KVPart::V);
  std::printf("target %.4g bits per cached value; chosen %.4g bits (%llu bytes per position), predicted KL %.4e nats "
              "(%s solver%s)\n",
              plan.target_bits, average_bits(plan, plan.bytes), static_cast<unsigned long long>(plan.bytes),
              plan.predicted, plan.solver.c_str(), plan.proven_optimal ? ", proven optimal" : "");
  std::printf("%-16s %7s %12s %12s %14s\n", "cache", "bits", "MiB at 4K", "MiB at 32K", "predicted KL");
  for (const auto& a : alternatives)
    std::printf("%-16s %7.3f %12.2f %12.2f %14.4e\n", a.label.c_str(), a.bits, mib(a.bytes_at(4096)),
                mib(a.bytes_at(32768)), a.predicted);
}

}  // namespace optiq::kv
