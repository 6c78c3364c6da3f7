// A one-line progress bar on stderr (done / total, rate, ETA), redrawn at most 5 times a second.
// By default it draws only when stderr is a terminal, so logs and tests stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace optiq {

class ProgressBar {
 public:
  // Units are divided by `unit_scale` for display (1e6 with unit "MB" shows bytes as MB).
  // `already_done` units were done before this run (a resumed download) and are left out of
  // the rate. `enabled` forces drawing on or off; unset means "if stderr is a terminal".
  ProgressBar(std::string label, uint64_t total, double unit_scale, std::string unit,
              std::optional<bool> enabled = std::nullopt, uint64_t already_done = 0);
  void update(uint64_t done);
  void finish();  // final redraw and newline, if drawing is on
  double elapsed_seconds() const;

 private:
  void draw(uint64_t done);
  std::string label_;
  uint64_t total_;
  double scale_;
  std::string unit_;
  bool enabled_;
  uint64_t already_done_;
  uint64_t last_done_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::optional<std::chrono::steady_clock::time_point> last_draw_;
};

}  // namespace optiq
