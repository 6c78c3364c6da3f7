#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace optiq {

ProgressBar::ProgressBar(std::string label, uint64_t total, double unit_scale, std::string unit)
    : label_(std::move(label)), total_(total), scale_(unit_scale), unit_(std::move(unit)),
      enabled_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(uint64_t done) {
  last_done_ = done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  draw(done);
}

void ProgressBar::draw(uint64_t done) {
  const double secs = elapsed_seconds();
  const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  const int width = 30;
  const int filled = static_cast<int>(frac * width);
  const double rate = secs > 0 ? static_cast<double>(done) / scale_ / secs : 0.0;
  const double eta = frac > 0 ? secs * (1 - frac) / frac : 0.0;
  std::fprintf(stderr, "\r%s [%.*s%*s] %5.1f%%  %.1f/%.1f %s  %.1f %s/s  ETA %.0fs ", label_.c_str(),
               filled, "##############################", width - filled, "", 100 * frac,
               static_cast<double>(done) / scale_, static_cast<double>(total_) / scale_,
               unit_.c_str(), rate, unit_.c_str(), eta);
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::finish() {
  if (!enabled_) return;
  draw(last_done_);
  std::fputc('\n', stderr);
}

}  // namespace optiq
