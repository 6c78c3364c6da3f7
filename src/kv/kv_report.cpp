#include "kv/kv_report.h"

#include <cstdio>
#include <limits>

#include "kv/kv_candidates.h"

namespace optiq::kv {
namespace {

using nlohmann::ordered_json;

std::string type_name(engine::KVType t) { return std::string(engine::kv_type_name(t)); }

double mib(uint64_t bytes) { return static_cast<double>(bytes) / 1048576.0; }

// A JSON number, or null for NaN (JSON has no NaN).
ordered_json number_or_null(double v) { return v == v ? ordered_json(v) : ordered_json(nullptr); }

}  // namespace

std::vector<KVAlternative> kv_alternatives(const KVPlan& plan, int64_t n_head_kv, int64_t head_dim) {
  std::vector<KVAlternative> out;
  out.push_back({"mixed", plan.bytes, average_bits(plan, plan.bytes), plan.predicted});
  const uint64_t f16 = plan.slots.size() * kv_row_bytes(engine::KVType::F16, n_head_kv, head_dim);
  out.push_back({"f16", f16, average_bits(plan, f16), std::numeric_limits<double>::quiet_NaN()});
  for (size_t i = 0; i < plan.types.size(); ++i) {
    if (plan.types[i] == engine::KVType::F16) out[1].predicted = uniform_predicted(plan, i);
    else {
      const uint64_t b = plan.slots.size() * plan.row_bytes[i];
      out.push_back({"uniform " + type_name(plan.types[i]), b, average_bits(plan, b), uniform_predicted(plan, i)});
    }
  }
  return out;
}

ordered_json kv_config_json(const KVPlan& plan) {
  ordered_json layers = ordered_json::array();
  for (const auto& l : chosen_layer_types(plan)) layers.push_back({{"k", type_name(l.k)}, {"v", type_name(l.v)}});
  return {{"layers", layers}};
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
    for (int64_t ctx : kReportContexts)
      m["bytes_at_" + std::to_string(ctx / 1024) + "k"] = a.bytes_per_position * static_cast<uint64_t>(ctx);
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
        {"turbo_f16", {{"sink", info.turbo_f16.sink}, {"recent", info.turbo_f16.recent}}},
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
    std::printf("%-16s %7.3f %12.2f %12.2f %14.4e\n", a.label.c_str(), a.bits, mib(a.bytes_per_position * 4096),
                mib(a.bytes_per_position * 32768), a.predicted);
}

}  // namespace optiq::kv
