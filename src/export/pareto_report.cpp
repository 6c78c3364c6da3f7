// The outputs of `optiq pareto`: pareto.json (every point, and what resuming compares),
// pareto.md (the table), pareto.svg (KLD against bits per weight, log y) and the table on stdout.
#include <nlohmann/json.hpp>

#include <sstream>

#include "eval/line_plot_svg.h"
#include "export/pareto.h"
#include "util/atomic_file.h"

namespace optiq {
namespace {

std::string fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

}  // namespace

void write_pareto_json(const std::filesystem::path& path, const ParetoResult& r) {
  nlohmann::ordered_json j;
  j["model"] = r.model_name;
  j["source"] = r.source_path;
  j["sensitivity_from"] = r.convert_dir;
  j["candidates"] = r.candidates;
  j["n_params"] = r.n_params;
  j["evaluation"] = {{"reference", r.reference}, {"text_sha256", r.text_sha256}, {"n_ctx", r.n_ctx}, {"n_chunks", r.n_chunks}};
  j["text"] = r.text_path;
  j["scored_tokens"] = r.n_scored;
  j["reference_ppl"] = r.reference_ppl;
  j["points"] = nlohmann::json::array();
  for (const auto& p : r.points) {
    nlohmann::ordered_json q;
    q["label"] = p.label;
    q["kind"] = p.kind;
    q["file"] = p.file;
    q["bytes"] = p.bytes;
    q["bpw"] = p.bpw;
    if (p.kind == "optiq") {
      q["target_bpw"] = p.target_bpw;
      q["predicted_kl"] = p.predicted_kl;
    }
    q["kld"] = p.kld;
    q["kld_error"] = p.kld_error;
    q["ppl"] = p.ppl;
    q["sha256"] = p.sha256;
    q["plan_sha256"] = p.plan_sha256;
    j["points"].push_back(q);
  }
  j["skipped"] = r.skipped;
  write_file_atomically(path, j.dump(2) + "\n");
}

void print_pareto_table(std::FILE* out, const ParetoResult& r) {
  std::fprintf(out, "%-18s %10s %8s %12s %10s%s\n", "label", "size MB", "bpw", "KLD", "PPL", "");
  for (const auto& p : r.points)
    std::fprintf(out, "%-18s %10.3f %8.3f %12.6f %10.4f%s\n", p.label.c_str(), static_cast<double>(p.bytes) / 1e6, p.bpw, p.kld,
                 p.ppl, p.reused ? "  (reused)" : "");
  std::fprintf(out, "reference (f32): PPL %.4f; %lld scored tokens (%lld chunks of %lld)\n", r.reference_ppl,
               static_cast<long long>(r.n_scored), static_cast<long long>(r.n_chunks), static_cast<long long>(r.n_ctx));
  for (const auto& s : r.skipped) std::fprintf(out, "skipped %s\n", s.c_str());
}

void write_pareto_markdown(const std::filesystem::path& path, const ParetoResult& r) {
  std::ostringstream md;
  md << "# " << r.model_name << ": size against quality\n\n";
  md << "Mean KL divergence from the reference (`" << r.source_path << "` dequantized to f32) and perplexity on `"
     << r.text_path << "` (" << r.n_scored << " scored tokens: " << r.n_chunks << " chunks of " << r.n_ctx
     << ", the second half of each scored). optiq's points reuse the sensitivity measured by `optiq convert` in `"
     << r.convert_dir << "` (candidates " << r.candidates
     << "); every file is quantized with that run's importance matrix. Reference perplexity: " << fmt("%.4f", r.reference_ppl)
     << ".\n\n";
  md << "| label | size (MB) | bpw | mean KLD | PPL | predicted KL |\n|---|---|---|---|---|---|\n";
  for (const auto& p : r.points)
    md << "| " << p.label << " | " << fmt("%.3f", static_cast<double>(p.bytes) / 1e6) << " | " << fmt("%.3f", p.bpw) << " | "
       << fmt("%.6f", p.kld) << " ± " << fmt("%.6f", p.kld_error) << " | " << fmt("%.4f", p.ppl) << " | "
       << (p.kind == "optiq" ? fmt("%.4e", p.predicted_kl) : std::string("—")) << " |\n";
  for (const auto& s : r.skipped) md << "\nSkipped: " << s << ".\n";
  md << "\n![KLD against bits per weight](pareto.svg)\n";
  write_file_atomically(path, md.str());
}

std::string pareto_svg(const ParetoResult& r) {
  eval::LinePlot plot;
  plot.title = r.model_name + ": mean KLD against bits per weight";
  plot.x_axis = "bits per weight (whole file)";
  plot.y_axis = "mean KL divergence (nats, log scale)";
  plot.log_y = true;
  eval::PlotSeries optiq{"optiq (measured KL)", "#1f77b4", true, {}};
  eval::PlotSeries recipe{"llama.cpp recipe", "#d62728", false, {}};
  eval::PlotSeries uniform{"uniform type", "#2ca02c", false, {}};
  for (const auto& p : r.points) {
    eval::PlotSeries& s = p.kind == "optiq" ? optiq : p.kind == "recipe" ? recipe : uniform;
    s.points.push_back({p.bpw, p.kld, p.kind == "optiq" ? "" : p.kind == "uniform" ? p.label.substr(p.label.find(' ') + 1) : p.label});
  }
  for (auto* s : {&optiq, &recipe, &uniform})
    if (!s->points.empty()) plot.series.push_back(*s);
  return eval::line_plot_svg(plot);
}

}  // namespace optiq
