// A heatmap as a standalone SVG document: one cell per (row, column), coloured from red (0) to
// green (1), the value printed in it, row and column labels, a title.
#pragma once

#include <string>
#include <vector>

namespace optiq::eval {

struct Heatmap {
  std::string title;
  std::string row_axis, column_axis;       // axis captions
  std::vector<std::string> rows, columns;  // labels
  std::vector<std::vector<double>> values; // [rows][columns] in [0, 1]
};

std::string heatmap_svg(const Heatmap& h);

}  // namespace optiq::eval
