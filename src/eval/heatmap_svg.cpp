#include "eval/heatmap_svg.h"

#include <algorithm>
#include <cstdio>

#include "util/xml_escape.h"

namespace optiq::eval {
namespace {

// Red (0) through yellow (0.5) to green (1).
std::string colour(double v) {
  v = std::clamp(v, 0.0, 1.0);
  const int r = v < 0.5 ? 215 : static_cast<int>(215 - (v - 0.5) * 2 * (215 - 26));
  const int g = v < 0.5 ? static_cast<int>(48 + v * 2 * (200 - 48)) : static_cast<int>(200 - (v - 0.5) * 2 * (200 - 150));
  const int b = v < 0.5 ? 39 : static_cast<int>(39 + (v - 0.5) * 2 * (80 - 39));
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
  return buf;
}

}  // namespace

std::string heatmap_svg(const Heatmap& h) {
  constexpr int cell = 56, left = 110, top = 60, bottom = 50;
  const int width = left + cell * static_cast<int>(h.columns.size()) + 20;
  const int height = top + cell * static_cast<int>(h.rows.size()) + bottom;
  std::string s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
                  std::to_string(height) + "\" viewBox=\"0 0 " + std::to_string(width) + " " + std::to_string(height) +
                  "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += "<text x=\"" + std::to_string(width / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + escape_xml(h.title) + "</text>\n";
  for (size_t c = 0; c < h.columns.size(); ++c)
    s += "<text x=\"" + std::to_string(left + cell * static_cast<int>(c) + cell / 2) + "\" y=\"" + std::to_string(top - 8) +
         "\" text-anchor=\"middle\">" + escape_xml(h.columns[c]) + "</text>\n";
  for (size_t r = 0; r < h.rows.size(); ++r) {
    const int y = top + cell * static_cast<int>(r);
    s += "<text x=\"" + std::to_string(left - 8) + "\" y=\"" + std::to_string(y + cell / 2 + 4) + "\" text-anchor=\"end\">" +
         escape_xml(h.rows[r]) + "</text>\n";
    for (size_t c = 0; c < h.columns.size(); ++c) {
      const double v = r < h.values.size() && c < h.values[r].size() ? h.values[r][c] : 0.0;
      const int x = left + cell * static_cast<int>(c);
      char label[16];
      std::snprintf(label, sizeof label, "%.2f", v);
      s += "<rect x=\"" + std::to_string(x) + "\" y=\"" + std::to_string(y) + "\" width=\"" + std::to_string(cell - 2) +
           "\" height=\"" + std::to_string(cell - 2) + "\" fill=\"" + colour(v) + "\"/>\n";
      s += "<text x=\"" + std::to_string(x + cell / 2 - 1) + "\" y=\"" + std::to_string(y + cell / 2 + 4) +
           "\" text-anchor=\"middle\">" + label + "</text>\n";
    }
  }
  const int axis_y = top + cell * static_cast<int>(h.rows.size()) + 24;
  s += "<text x=\"" + std::to_string(left + cell * static_cast<int>(h.columns.size()) / 2) + "\" y=\"" + std::to_string(axis_y) +
       "\" text-anchor=\"middle\">" + escape_xml(h.column_axis) + "</text>\n";
  s += "<text x=\"14\" y=\"" + std::to_string(top + cell * static_cast<int>(h.rows.size()) / 2) + "\" text-anchor=\"middle\" transform=\"rotate(-90 14 " +
       std::to_string(top + cell * static_cast<int>(h.rows.size()) / 2) + ")\">" + escape_xml(h.row_axis) + "</text>\n";
  return s + "</svg>\n";
}

}  // namespace optiq::eval
