#include "eval/line_plot_svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "util/xml_escape.h"

namespace optiq::eval {
namespace {

constexpr double kWidth = 820, kHeight = 500;
constexpr double kLeft = 80, kRight = 240, kTop = 50, kBottom = 60;  // margins, px; the legend sits right

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

std::string tick_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A "nice" step (1, 2 or 5 × 10^k) giving about `n` intervals over `span`.
double nice_step(double span, int n) {
  const double raw = span / n;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

bool usable(const LinePlot& plot, const PlotPoint& p) {
  return std::isfinite(p.x) && std::isfinite(p.y) && (!plot.log_y || p.y > 0);
}

}  // namespace

std::string line_plot_svg(const LinePlot& plot) {
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : plot.series)
    for (const auto& p : s.points) {
      if (!usable(plot, p)) continue;
      const double y = plot.log_y ? std::log10(p.y) : p.y;
      x0 = std::min(x0, p.x), x1 = std::max(x1, p.x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 - x0 < 1e-9) x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 < 1e-9) y0 -= 0.5, y1 += 0.5;
  const double x_step = nice_step(x1 - x0, 8);
  x0 = std::floor(x0 / x_step) * x_step, x1 = std::ceil(x1 / x_step) * x_step;
  if (plot.log_y) {
    y0 = std::floor(y0), y1 = std::ceil(y1);  // whole decades
  } else {
    const double step = nice_step(y1 - y0, 6);
    y0 = std::floor(y0 / step) * step, y1 = std::ceil(y1 / step) * step;
  }
  const double pw = kWidth - kLeft - kRight, ph = kHeight - kTop - kBottom;
  auto px = [&](double x) { return kLeft + (x - x0) / (x1 - x0) * pw; };
  auto py = [&](double y) { return kTop + (1 - ((plot.log_y ? std::log10(y) : y) - y0) / (y1 - y0)) * ph; };

  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) + "\" height=\"" + num(kHeight) +
                  "\" viewBox=\"0 0 " + num(kWidth) + " " + num(kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + num(kLeft + pw / 2) + "\" y=\"26\" text-anchor=\"middle\" font-size=\"15\">" + escape_xml(plot.title) + "</text>\n";
  // Gridlines and ticks.
  for (double x = x0; x <= x1 + x_step / 2; x += x_step) {
    s += "<line x1=\"" + num(px(x)) + "\" y1=\"" + num(kTop) + "\" x2=\"" + num(px(x)) + "\" y2=\"" + num(kTop + ph) +
         "\" stroke=\"#e0e0e0\"/>\n";
    s += "<text x=\"" + num(px(x)) + "\" y=\"" + num(kTop + ph + 18) + "\" text-anchor=\"middle\">" + tick_text(x) + "</text>\n";
  }
  if (plot.log_y) {
    for (int e = static_cast<int>(y0); e <= static_cast<int>(y1); ++e) {
      for (int m = 1; m <= 9 && (m == 1 || e < static_cast<int>(y1)); ++m) {
        const double v = m * std::pow(10.0, e);
        s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(py(v)) + "\" x2=\"" + num(kLeft + pw) + "\" y2=\"" + num(py(v)) +
             "\" stroke=\"" + (m == 1 ? "#c8c8c8" : "#f0f0f0") + "\"/>\n";
      }
      s += "<text x=\"" + num(kLeft - 6) + "\" y=\"" + num(py(std::pow(10.0, e)) + 4) + "\" text-anchor=\"end\">" +
           tick_text(std::pow(10.0, e)) + "</text>\n";
    }
  } else {
    const double step = nice_step(y1 - y0, 6);
    for (double y = y0; y <= y1 + step / 2; y += step) {
      s += "<line x1=\"" + num(kLeft) + "\" y1=\"" + num(py(y)) + "\" x2=\"" + num(kLeft + pw) + "\" y2=\"" + num(py(y)) +
           "\" stroke=\"#e0e0e0\"/>\n";
      s += "<text x=\"" + num(kLeft - 6) + "\" y=\"" + num(py(y) + 4) + "\" text-anchor=\"end\">" + tick_text(y) + "</text>\n";
    }
  }
  s += "<rect x=\"" + num(kLeft) + "\" y=\"" + num(kTop) + "\" width=\"" + num(pw) + "\" height=\"" + num(ph) +
       "\" fill=\"none\" stroke=\"#404040\"/>\n";
  s += "<text x=\"" + num(kLeft + pw / 2) + "\" y=\"" + num(kHeight - 16) + "\" text-anchor=\"middle\">" + escape_xml(plot.x_axis) + "</text>\n";
  s += "<text x=\"18\" y=\"" + num(kTop + ph / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 18 " + num(kTop + ph / 2) +
       ")\">" + escape_xml(plot.y_axis) + "</text>\n";
  // Series, then the legend.
  for (size_t k = 0; k < plot.series.size(); ++k) {
    const PlotSeries& series = plot.series[k];
    std::vector<PlotPoint> pts;
    for (const auto& p : series.points)
      if (usable(plot, p)) pts.push_back(p);
    std::stable_sort(pts.begin(), pts.end(), [](const PlotPoint& a, const PlotPoint& b) { return a.x < b.x; });
    if (series.connect && pts.size() > 1) {
      s += "<polyline fill=\"none\" stroke=\"" + series.colour + "\" stroke-width=\"2\" points=\"";
      for (const auto& p : pts) s += num(px(p.x)) + "," + num(py(p.y)) + " ";
      s += "\"/>\n";
    }
    for (const auto& p : pts) {
      s += "<circle cx=\"" + num(px(p.x)) + "\" cy=\"" + num(py(p.y)) + "\" r=\"4\" fill=\"" + series.colour + "\"/>\n";
      if (!p.label.empty())
        s += "<text x=\"" + num(px(p.x) + 6) + "\" y=\"" + num(py(p.y) - 6) + "\" font-size=\"10\" fill=\"" + series.colour + "\">" +
             escape_xml(p.label) + "</text>\n";
    }
    const double ly = kTop + 14 + 20 * static_cast<double>(k), lx = kLeft + pw + 16;
    if (series.connect)
      s += "<line x1=\"" + num(lx) + "\" y1=\"" + num(ly - 4) + "\" x2=\"" + num(lx + 22) + "\" y2=\"" + num(ly - 4) + "\" stroke=\"" +
           series.colour + "\" stroke-width=\"2\"/>\n";
    s += "<circle cx=\"" + num(lx + 11) + "\" cy=\"" + num(ly - 4) + "\" r=\"4\" fill=\"" + series.colour + "\"/>\n";
    s += "<text x=\"" + num(lx + 28) + "\" y=\"" + num(ly) + "\">" + escape_xml(series.name) + "</text>\n";
  }
  return s + "</svg>\n";
}

}  // namespace optiq::eval
