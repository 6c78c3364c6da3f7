// A scatter/line chart as a standalone SVG document: several named series of (x, y) points, a
// linear x axis and a linear or base-10 logarithmic y axis with gridlines and tick labels, a
// legend. Used for `optiq pareto`'s KLD-vs-bpw plot.
#pragma once

#include <string>
#include <vector>

namespace optiq::eval {

struct PlotPoint {
  double x = 0, y = 0;  // data units; y > 0 on a log axis (other points are left out)
  std::string label;    // printed beside the marker ("" for none)
};

struct PlotSeries {
  std::string name;               // legend entry
  std::string colour;             // CSS colour, "#1f77b4"
  bool connect = true;            // draw a line through the points (in x order)
  std::vector<PlotPoint> points;
};

struct LinePlot {
  std::string title;
  std::string x_axis, y_axis;  // axis captions
  bool log_y = false;          // base-10 logarithmic y axis
  std::vector<PlotSeries> series;
};

std::string line_plot_svg(const LinePlot& plot);

}  // namespace optiq::eval
