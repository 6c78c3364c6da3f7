// A one-line progress bar on stderr (units done / total, rate, ETA), redrawn at most 10 times
// a second and only when stderr is a terminal, so logs and tests stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace optiq {

class ProgressBar {
 public:
  // `unit_scale` divides units for display (e.g. 1e6 with label "MB").
  ProgressBar(std::string label, uint64_t total, double unit_scale = 1.0, std::string unit = "");
  void update(uint64_t done);
  void finish();  // final redraw and newline (if anything was drawn)
  double elapsed_seconds() const;

 private:
  void draw(uint64_t done);
  std::string label_;
  uint64_t total_;
  double scale_;
  std::string unit_;
  bool enabled_;
  bool drawn_ = false;
  uint64_t last_done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace optiq
