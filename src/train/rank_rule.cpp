#include "train/rank_rule.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

#include "io/ggml_type.h"
#include "sensitivity/checkpoint.h"
#include "util/error.h"
#include "util/json_file.h"

namespace optiq::train {
namespace {

namespace fs = std::filesystem;

constexpr std::pair<RankScaling, std::string_view> kRuleNames[] = {
    {RankScaling::Uniform, "uniform"}, {RankScaling::ByBits, "by_bits"}, {RankScaling::ByKl, "by_kl"}};

// The weight a rule gives a target (see the header); throws for an unusable signal.
double rank_weight(const RankTarget& t, RankScaling rule) {
  if (rule == RankScaling::Uniform) return 1.0;
  if (!std::isfinite(t.signal) || t.signal <= 0)
    throw std::invalid_argument("allocate_ranks: " + t.name + ": " + std::string(rank_scaling_name(rule)) + " signal " +
                                std::to_string(t.signal) + " is not positive and finite");
  return rule == RankScaling::ByBits ? t.signal : std::sqrt(t.signal);
}

// GGUF name -> the type the report's plan chose for it.
std::map<std::string, GgmlType> chosen_types(const fs::path& report) {
  const nlohmann::json j = read_json_file(report);
  if (!j.is_object() || !j.contains("tensors") || !j["tensors"].is_array())
    throw InputError(report.string(), std::nullopt, "is not an optiq-report.json (no tensors list)");
  std::map<std::string, GgmlType> out;
  for (const nlohmann::json& row : j["tensors"]) {
    if (!row.is_object() || !row.contains("name") || !row["name"].is_string() || !row.contains("chosen") ||
        !row["chosen"].is_string())
      throw InputError(report.string(), std::nullopt, "a tensors entry without a name and a chosen type: " + row.dump());
    const std::string name = row["name"].get<std::string>(), chosen = row["chosen"].get<std::string>();
    const std::optional<GgmlType> type = ggml_type_from_name(chosen);
    if (!type) throw InputError(report.string(), std::nullopt, "tensor " + name + ": unknown type \"" + chosen + "\"");
    out[name] = *type;
  }
  return out;
}

// The KL of the lowest-bits ggml type among one tensor's measurements (type name -> KL; names
// that are no ggml type are passed over), the larger KL among equal bits; nullopt when none is.
std::optional<double> lowest_bits_kl(const std::map<std::string, double>& measured) {
  std::optional<double> kl;
  double bits = std::numeric_limits<double>::infinity();
  for (const auto& [name, value] : measured) {
    const std::optional<GgmlType> type = ggml_type_from_name(name);
    if (!type) continue;
    const double b = ggml_bits_per_weight(*type);
    if (b < bits || (b == bits && value > *kl)) {
      bits = b;
      kl = value;
    }
  }
  return kl;
}

}  // namespace

std::optional<RankScaling> parse_rank_scaling(std::string_view name) {
  for (const auto& [rule, rule_name] : kRuleNames)
    if (rule_name == name) return rule;
  return std::nullopt;
}

std::string_view rank_scaling_name(RankScaling rule) {
  for (const auto& [r, rule_name] : kRuleNames)
    if (r == rule) return rule_name;
  throw std::invalid_argument("rank_scaling_name: not a rank scaling rule");
}

std::vector<int64_t> allocate_ranks(std::span<const RankTarget> targets, int64_t base_rank, RankScaling rule) {
  if (base_rank < 1) throw std::invalid_argument("allocate_ranks: base rank " + std::to_string(base_rank) + " is below 1");
  const size_t n = targets.size();
  std::vector<double> weight(n);
  std::vector<int64_t> size(n), cap(n), rank(n, 1);
  int64_t budget = 0, used = 0;
  for (size_t i = 0; i < n; ++i) {
    const RankTarget& t = targets[i];
    if (t.n_in <= 0 || t.n_out <= 0) throw std::invalid_argument("allocate_ranks: " + t.name + ": n_in and n_out must be positive");
    weight[i] = rank_weight(t, rule);
    size[i] = t.n_in + t.n_out;
    cap[i] = std::min({4 * base_rank, t.n_in, t.n_out});
    budget += base_rank * size[i];
    used += size[i];
  }
  if (rule == RankScaling::Uniform) {
    for (size_t i = 0; i < n; ++i) rank[i] = std::min({base_rank, targets[i].n_in, targets[i].n_out});
    return rank;
  }
  // Every step from rank k to k + 1 (below the cap), at the c where c·w_i = k + 1/2.
  struct Step {
    double c;  // the scale at which the step happens
    size_t i;  // the target that steps
  };
  std::vector<Step> steps;
  for (size_t i = 0; i < n; ++i)
    for (int64_t k = 1; k < cap[i]; ++k) steps.push_back({(static_cast<double>(k) + 0.5) / weight[i], i});
  std::sort(steps.begin(), steps.end(), [](const Step& a, const Step& b) { return a.c != b.c ? a.c < b.c : a.i < b.i; });
  size_t s = 0;
  while (s < steps.size()) {
    size_t end = s;
    int64_t cost = 0;
    for (; end < steps.size() && steps[end].c == steps[s].c; ++end) cost += size[steps[end].i];
    if (used + cost > budget) break;
    for (; s < end; ++s) ++rank[steps[s].i];
    used += cost;
  }
  if (s == steps.size()) return rank;  // every target at its cap
  const double c = steps[s].c;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return c * weight[a] - static_cast<double>(rank[a]) > c * weight[b] - static_cast<double>(rank[b]);
  });
  for (const size_t i : order)
    if (rank[i] < cap[i] && used + size[i] <= budget) {
      ++rank[i];
      used += size[i];
    }
  return rank;
}

std::map<std::string, double> bits_per_weight_of(const engine::Model& model) {
  std::map<std::string, double> out;
  for (const engine::Layer& L : model.layers)
    for (const engine::Weight* w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down})
      out[w->name] = ggml_bits_per_weight(w->type);
  return out;
}

std::map<std::string, double> bits_from_report(const fs::path& optiq_report_json) {
  std::map<std::string, double> out;
  for (const auto& [name, type] : chosen_types(optiq_report_json)) out[name] = ggml_bits_per_weight(type);
  return out;
}

std::map<std::string, double> kl_from_convert_dir(const fs::path& convert_dir) {
  const fs::path checkpoint = convert_dir / "sensitivity.jsonl", report = convert_dir / "optiq-report.json";
  if (!fs::exists(checkpoint))
    throw InputError(checkpoint.string(), std::nullopt,
                     "missing: by_kl needs the KL an `optiq convert` run without --fast measured into its output folder");
  const sensitivity::CheckpointContents contents = sensitivity::read_checkpoint(checkpoint);
  if (!contents.header.is_object() || contents.header.value("format", "") != "optiq-sensitivity")
    throw InputError(checkpoint.string(), 0, "has no optiq-sensitivity header line: not a convert checkpoint");
  std::map<std::string, std::map<std::string, double>> measured;  // tensor -> type name -> KL
  for (const auto& [key, kl] : contents.kl) measured[key.first][key.second] = kl;
  const std::map<std::string, GgmlType> chosen = fs::exists(report) ? chosen_types(report) : std::map<std::string, GgmlType>{};
  for (const auto& [name, type] : chosen)
    if (!measured.contains(name))
      throw InputError(checkpoint.string(), std::nullopt, "has no measurement of " + name + ", which " + report.string() + " lists");

  std::map<std::string, double> out;
  for (const auto& [name, kls] : measured) {
    const auto plan = chosen.find(name);
    const auto at_plan = plan == chosen.end() ? kls.end() : kls.find(std::string(ggml_type_name(plan->second)));
    const std::optional<double> kl = at_plan != kls.end() ? std::optional<double>(at_plan->second) : lowest_bits_kl(kls);
    if (!kl) throw InputError(checkpoint.string(), std::nullopt, "has no measurement of " + name + " at a ggml type");
    out[name] = *kl;
  }
  double floor = std::numeric_limits<double>::infinity();
  for (const auto& [name, kl] : out)
    if (kl > 0) floor = std::min(floor, kl);
  if (!std::isfinite(floor)) throw InputError(checkpoint.string(), std::nullopt, "holds no positive KL");
  for (auto& [name, kl] : out) kl = std::max(kl, floor);
  return out;
}

}  // namespace optiq::train
