// The files `optiq convert` writes beside its GGUF: optiq-report.json (everything measured and
// chosen), README.md (a Hugging Face style model card) and tensor-types.txt (for
// llama-quantize --tensor-type-file).
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <sstream>

#include "alloc/budget.h"
#include "export/mixed_convert.h"
#include "util/atomic_file.h"

namespace optiq {
namespace {

std::string type_name(GgmlType t) { return std::string(ggml_type_name(t)); }

// JSON has no NaN: unmeasured values become null.
nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); }

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// "blk.12.ffn_down.weight" -> (12, "ffn_down"); non-layer tensors -> (-1, name without ".weight").
std::pair<int, std::string> layer_and_kind(const std::string& name) {
  int layer = -1;
  std::string rest = name;
  if (name.starts_with("blk.")) {
    const size_t dot = name.find('.', 4);
    layer = std::stoi(name.substr(4, dot - 4));
    rest = name.substr(dot + 1);
  }
  if (rest.ends_with(".weight")) rest.resize(rest.size() - 7);
  return {layer, rest};
}

}  // namespace

std::string tensor_type_pattern(const std::string& name) {
  std::string p = "^";
  for (char c : name) {
    if (std::string_view(".^$|()[]{}*+?\\").find(c) != std::string_view::npos) p += '\\';
    p += c;
  }
  return p + "$";
}

void write_tensor_types(const std::filesystem::path& path, const MixedConvertResult& r) {
  std::string text;
  for (const auto& t : r.tensors) {
    std::string type = type_name(t.types[t.chosen]);
    for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    text += tensor_type_pattern(t.source->name) + "=" + type + "\n";
  }
  write_file_atomically(path, text);
}

void write_report_json(const std::filesystem::path& path, const MixedConvertResult& r, const MixedConvertOptions& o) {
  nlohmann::ordered_json j;
  j["model"] = r.model_name;
  j["source"] = r.source_path;
  j["file"] = r.gguf_file;
  nlohmann::ordered_json options;
  options["calibration_mix"] = o.calibration_mix;
  options["seq_len"] = o.calibration.seq_len;
  options["n_calibration"] = o.calibration.n_calibration;
  options["n_held_out"] = o.n_held_out;
  options["candidates"] = o.candidates_label;
  options["keep_stored"] = o.keep_stored;
  options["target"] = r.budget_label;
  options["sensitivity"] = o.fast ? "fast" : "exact";
  options["reference"] = o.reference_q8_0 ? "q8_0" : "source";
  options["protect"] = nlohmann::json::array();
  for (const auto& p : o.protect) options["protect"].push_back(p.spec);
  options["threads"] = o.threads;
  j["options"] = options;
  nlohmann::ordered_json cal;
  cal["calibration_tokens"] = r.n_calibration_tokens;
  cal["held_out_tokens"] = r.n_held_out_tokens;
  for (const auto& d : r.domains)
    cal["domains"].push_back({{"domain", d.domain}, {"samples", d.samples}, {"tokens", d.tokens},
                              {"calibration_sequences", d.calibration}, {"held_out_sequences", d.held_out}});
  j["calibration"] = cal;
  nlohmann::ordered_json totals;
  totals["n_params"] = r.n_params;
  totals["budget_bytes"] = r.budget_bytes;
  totals["bytes"] = r.total_bytes;
  totals["bpw"] = alloc::bits_per_weight(r.total_bytes, r.n_params);
  totals["fixed_bytes"] = r.fixed_bytes;
  totals["predicted_kl"] = r.predicted;
  totals["measured_kl"] = r.measured >= 0 ? nlohmann::json(r.measured) : nlohmann::json(nullptr);
  totals["kl_unit"] = o.fast ? "proxy (importance-weighted squared error)" : "nats";
  totals["solver"] = r.solver;
  totals["greedy_objective"] = r.greedy_cost;
  totals["exact_objective"] = r.exact_cost;
  totals["exact_proven_optimal"] = r.exact_proven;
  totals["spearman_fast_vs_exact"] = number_or_null(r.spearman);
  totals["measurements_made"] = r.n_measured;
  totals["measurements_resumed"] = r.n_resumed;
  if (r.target_tps > 0) {
    totals["target_tps"] = r.target_tps;
    totals["predicted_tps"] = r.predicted_tps;
    totals["speed_method"] = r.speed_method;
  }
  j["totals"] = totals;
  for (const auto& a : r.alternatives)
    j["alternatives"].push_back({{"label", a.label}, {"bytes", a.bytes}, {"bpw", alloc::bits_per_weight(a.bytes, r.n_params)},
                                 {"predicted_kl", number_or_null(a.predicted)},
                                 {"measured_kl", a.measured >= 0 ? nlohmann::json(a.measured) : nlohmann::json(nullptr)},
                                 {"file", a.file}});
  for (const auto& t : r.tensors) {
    nlohmann::ordered_json row;
    row["name"] = t.source->name;
    row["shape"] = t.source->shape;
    row["source_type"] = type_name(t.source->type);
    nlohmann::ordered_json kl;
    for (size_t k = 0; k < t.types.size(); ++k) kl[type_name(t.types[k])] = t.cost[k];
    row["kl"] = kl;
    for (const auto& [type, cost] : t.other_cost) row["kl_comparison_only"][type_name(type)] = cost;
    row["chosen"] = type_name(t.types[t.chosen]);
    row["kept_stored_bytes"] = t.types[t.chosen] == t.source->type;
    row["bytes"] = t.bytes[t.chosen];
    j["tensors"].push_back(row);
  }
  nlohmann::ordered_json timings;
  for (const auto& [step, s] : r.seconds) timings[step] = s;
  j["seconds"] = timings;
  j["warnings"] = r.warnings;
  write_file_atomically(path, j.dump(2) + "\n");
}

void write_model_card(const std::filesystem::path& path, const MixedConvertResult& r, const MixedConvertOptions& o) {
  std::map<GgmlType, std::pair<size_t, uint64_t>> per_type;  // type -> (tensors, parameters)
  for (const auto& t : r.tensors) {
    auto& [count, params] = per_type[t.types[t.chosen]];
    ++count;
    params += t.source->n_elements();
  }
  uint64_t quantized_params = 0;
  GgmlType predominant = r.tensors.front().types[r.tensors.front().chosen];
  for (const auto& [type, cp] : per_type) {
    quantized_params += cp.second;
    if (cp.second > per_type[predominant].second) predominant = type;
  }
  const double bpw = alloc::bits_per_weight(r.total_bytes, r.n_params);
  const char* unit = o.fast ? "proxy units" : "nats";

  std::ostringstream md;
  md << "---\ntags:\n- gguf\n- optiq\n- quantized\n- mixed-precision\n---\n\n";
  md << "# " << r.model_name << " — optiq mixed-precision GGUF\n\n";
  md << "`" << r.gguf_file << "`: " << fmt("%.2f", r.total_bytes / 1e6) << " MB of tensor data, "
     << fmt("%.3f", bpw) << " bits per weight over all " << r.n_params << " parameters. Predominant precision: **"
     << type_name(predominant) << "** (" << fmt("%.1f", 100.0 * per_type[predominant].second / quantized_params)
     << "% of the quantized parameters). The file is a plain GGUF: llama.cpp, ollama and LM Studio load it as it is.\n\n";
  md << "Each tensor's type was chosen by measurement: the mean KL divergence of the next-token distribution with "
        "only that tensor quantized, over the calibration tokens, then a knapsack that spends the size budget ("
     << r.budget_label << ") where it lowers the predicted total KL most.\n\n";
  md << "## Quality\n\n| | size (MB) | bpw | predicted KL (" << unit << ") | measured KL, held out (nats) |\n|---|---|---|---|---|\n";
  md << "| **this file** | " << fmt("%.2f", r.total_bytes / 1e6) << " | " << fmt("%.3f", bpw) << " | "
     << fmt("%.4e", r.predicted) << " | " << (r.measured >= 0 ? fmt("%.4e", r.measured) : "—") << " |\n";
  for (const auto& a : r.alternatives)
    md << "| " << a.label << " | " << fmt("%.2f", a.bytes / 1e6) << " | " << fmt("%.3f", alloc::bits_per_weight(a.bytes, r.n_params))
       << " | " << (std::isfinite(a.predicted) ? fmt("%.4e", a.predicted) : "—") << " | "
       << (a.measured >= 0 ? fmt("%.4e", a.measured) : "—") << " |\n";
  md << "\nThe reference is the source model (" << (o.reference_q8_0 ? "run as Q8_0 while measuring" : "its weights dequantized to f32")
     << "), `" << r.source_path << "`. Measured KL is over " << r.n_held_out_tokens
     << " held-out calibration tokens that the measurement never saw.\n\n";

  md << "## Tensor types\n\n| type | tensors | parameters |\n|---|---|---|\n";
  for (const auto& [type, cp] : per_type) md << "| " << type_name(type) << " | " << cp.first << " | " << cp.second << " |\n";
  md << "\nTensors that are never quantized (norms, vectors) keep their stored type.\n\n";

  md << "## Per-layer bit map\n\nBits per weight of each tensor's type.\n\n";
  std::vector<std::string> kinds;
  std::map<int, std::map<std::string, GgmlType>> grid;
  std::vector<std::pair<std::string, GgmlType>> others;
  for (const auto& t : r.tensors) {
    const auto [layer, kind] = layer_and_kind(t.source->name);
    if (layer < 0) {
      others.push_back({kind, t.types[t.chosen]});
      continue;
    }
    if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
    grid[layer][kind] = t.types[t.chosen];
  }
  for (const auto& [kind, type] : others)
    md << "- `" << kind << "`: " << type_name(type) << " (" << fmt("%.2f", sensitivity::type_bpw(type)) << ")\n";
  md << "\n| layer |";
  for (const auto& k : kinds) md << " " << k << " |";
  md << "\n|---|";
  for (size_t i = 0; i < kinds.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& [layer, row] : grid) {
    md << "| " << layer << " |";
    for (const auto& k : kinds) {
      const auto it = row.find(k);
      md << " " << (it == row.end() ? std::string("—") : fmt("%.2f", sensitivity::type_bpw(it->second))) << " |";
    }
    md << "\n";
  }

  md << "\n## Calibration\n\nMix `" << o.calibration_mix << "`, rendered through this model's chat template, in sequences of "
     << o.calibration.seq_len << " tokens: " << r.n_calibration_tokens << " tokens measured, " << r.n_held_out_tokens
     << " held out.\n\n| domain | samples | tokens |\n|---|---|---|\n";
  for (const auto& d : r.domains) md << "| " << d.domain << " | " << d.samples << " | " << d.tokens << " |\n";
  md << "\nCandidates: " << o.candidates_label << " (types whose blocks do not divide a tensor's rows fall back as in llama.cpp"
     << (o.keep_stored ? "; a tensor the source stores quantized may also keep its type and bytes" : "") << "). "
     << "Sensitivity: " << (o.fast ? "fast proxy (importance-weighted quantization error)" : "measured KL per tensor and type")
     << ". Solver: " << r.solver << ".\n\n";
  md << "## Reproduce\n\n```\nllama-quantize --imatrix imatrix.gguf --tensor-type-file tensor-types.txt SOURCE.gguf out.gguf "
     << type_name(predominant) << "\n```\n\nmakes the same tensor types with llama.cpp's own quantizer; "
        "`optiq-report.json` holds every measurement.\n";
  write_file_atomically(path, md.str());
}

}  // namespace optiq
