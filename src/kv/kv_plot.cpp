#include "kv/kv_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "util/xml_escape.h"

namespace optiq::kv {
namespace {

constexpr const char* kColours[] = {"#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string num(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.1f", v);
  return s;
}

// The plot area of one panel and its log10 KL range, in pixels.
struct Panel {
  double left, top, width, height;  // pixels
  double lo, hi;                    // log10 of the KL at the bottom and top edges
  int64_t n_layer;                  // x axis: layer 0 .. n_layer - 1

  double x(int64_t layer) const {
    return left + width * (n_layer > 1 ? static_cast<double>(layer) / static_cast<double>(n_layer - 1) : 0.5);
  }
  double y(double kl) const {
    const double l = kl > 0 ? std::clamp(std::log10(kl), lo, hi) : lo;
    return top + height * (hi - l) / (hi - lo);
  }
};

std::string draw_panel(const KVPlan& plan, const Panel& p, KVPart part, const std::string& caption) {
  std::string s;
  s += "<rect x=\"" + num(p.left) + "\" y=\"" + num(p.top) + "\" width=\"" + num(p.width) + "\" height=\"" + num(p.height) +
       "\" fill=\"none\" stroke=\"#888\"/>\n";
  for (int d = static_cast<int>(p.lo); d <= static_cast<int>(p.hi); ++d) {
    const double y = p.y(std::pow(10.0, d));
    s += "<line x1=\"" + num(p.left) + "\" y1=\"" + num(y) + "\" x2=\"" + num(p.left + p.width) + "\" y2=\"" + num(y) +
         "\" stroke=\"#ddd\"/>\n";
    s += "<text x=\"" + num(p.left - 6) + "\" y=\"" + num(y + 4) + "\" text-anchor=\"end\">1e" + std::to_string(d) + "</text>\n";
  }
  const int64_t step = std::max<int64_t>(1, p.n_layer / 16);
  for (int64_t l = 0; l < p.n_layer; l += step)
    s += "<text x=\"" + num(p.x(l)) + "\" y=\"" + num(p.top + p.height + 16) + "\" text-anchor=\"middle\">" +
         std::to_string(l) + "</text>\n";
  s += "<text x=\"" + num(p.left + 8) + "\" y=\"" + num(p.top + 16) + "\" font-weight=\"bold\">" + escape_xml(caption) + "</text>\n";
  for (size_t i = 0; i < plan.types.size(); ++i) {
    const char* colour = kColours[i % std::size(kColours)];
    std::string points;
    for (size_t sl = 0; sl < plan.slots.size(); ++sl) {
      if (plan.slots[sl].part != part) continue;
      const double x = p.x(plan.slots[sl].layer), y = p.y(plan.kl[sl][i]);
      points += num(x) + "," + num(y) + " ";
      s += "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"2.5\" fill=\"" + colour + "\"/>\n";
      if (plan.chosen[sl] == i)
        s += "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"6\" fill=\"none\" stroke=\"black\" stroke-width=\"1.5\"/>\n";
    }
    s += "<polyline points=\"" + points + "\" fill=\"none\" stroke=\"" + colour + "\" stroke-width=\"1.5\"/>\n";
  }
  return s;
}

}  // namespace

std::string kv_sensitivity_svg(const KVPlan& plan, const std::string& title) {
  const int64_t n_layer = static_cast<int64_t>(plan.slots.size() / 2);
  double lo = 0, hi = 0;
  bool any = false, zero = false;
  for (const auto& row : plan.kl)
    for (double v : row)
      if (v <= 0) zero = true;
      else {
        const double l = std::log10(v);
        lo = any ? std::min(lo, l) : l;
        hi = any ? std::max(hi, l) : l;
        any = true;
      }
  lo = any ? std::floor(lo) : -6;
  hi = any ? std::ceil(hi) : 0;
  if (hi <= lo) hi = lo + 1;

  const double left = 70, plot_w = std::max(480.0, 18.0 * static_cast<double>(n_layer)), panel_h = 220, gap = 50;
  const double width = left + plot_w + 150, height = 50 + 2 * panel_h + gap + 60;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(width) + "\" height=\"" + num(height) +
                  "\" viewBox=\"0 0 " + num(width) + " " + num(height) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(width / 2) + "\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">" + escape_xml(title) + "</text>\n";
  const Panel keys{left, 50, plot_w, panel_h, lo, hi, n_layer};
  const Panel values{left, 50 + panel_h + gap, plot_w, panel_h, lo, hi, n_layer};
  s += draw_panel(plan, keys, KVPart::K, "keys (K)");
  s += draw_panel(plan, values, KVPart::V, "values (V)");
  s += "<text x=\"" + num(left + plot_w / 2) + "\" y=\"" + num(height - 12) + "\" text-anchor=\"middle\">layer</text>\n";
  s += "<text transform=\"translate(16 " + num(50 + panel_h + gap / 2) +
       ") rotate(-90)\" text-anchor=\"middle\">mean KL (nats), only this layer's K or V quantized</text>\n";
  const double legend_x = left + plot_w + 20;
  for (size_t i = 0; i < plan.types.size(); ++i) {
    const double y = 70 + 20 * static_cast<double>(i);
    s += "<line x1=\"" + num(legend_x) + "\" y1=\"" + num(y - 4) + "\" x2=\"" + num(legend_x + 24) + "\" y2=\"" + num(y - 4) +
         "\" stroke=\"" + kColours[i % std::size(kColours)] + "\" stroke-width=\"2\"/>\n";
    s += "<text x=\"" + num(legend_x + 30) + "\" y=\"" + num(y) + "\">" +
         escape_xml(std::string(engine::kv_type_name(plan.types[i]))) + "</text>\n";
  }
  const double y = 70 + 20 * static_cast<double>(plan.types.size()) + 10;
  s += "<circle cx=\"" + num(legend_x + 12) + "\" cy=\"" + num(y - 4) + "\" r=\"6\" fill=\"none\" stroke=\"black\" stroke-width=\"1.5\"/>\n";
  s += "<text x=\"" + num(legend_x + 30) + "\" y=\"" + num(y) + "\">chosen</text>\n";
  if (zero) s += "<text x=\"" + num(legend_x) + "\" y=\"" + num(y + 24) + "\">KL 0: bottom edge</text>\n";
  s += "</svg>\n";
  return s;
}

}  // namespace optiq::kv
