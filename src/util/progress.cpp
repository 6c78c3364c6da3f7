#include "util/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace optiq {

ProgressBar::ProgressBar(std::string label, uint64_t total, double unit_scale, std::string unit,
                         std::optional<bool> enabled, uint64_t already_done)
    : label_(std::move(label)), total_(total), scale_(unit_scale), unit_(std::move(unit)),
      enabled_(enabled.value_or(::isatty(STDERR_FILENO) == 1)), already_done_(already_done),
      last_done_(already_done), start_(std::chrono::steady_clock::now()) {}

double ProgressBar::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::update(uint64_t done) {
  last_done_ = done;
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (last_draw_ && now - *last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  draw(done);
}

void ProgressBar::draw(uint64_t done) {
  constexpr int kWidth = 24;
  const double secs = elapsed_seconds();
  const double frac = total_ ? std::min(1.0, static_cast<double>(done) / static_cast<double>(total_)) : 1.0;
  const int filled = static_cast<int>(frac * kWidth);
  const double fresh = static_cast<double>(done - std::min(done, already_done_));
  const double rate = secs > 0 ? fresh / secs : 0.0;  // units per second
  const double left = static_cast<double>(total_ - std::min(done, total_));
  const int eta = rate > 0 ? static_cast<int>(left / rate) : 0;
  std::fprintf(stderr, "\r%s: %.1f/%.1f %s [%.*s%*s] %3.0f%%  %.1f %s/s  ETA %d:%02d ", label_.c_str(),
               static_cast<double>(done) / scale_, static_cast<double>(total_) / scale_, unit_.c_str(),
               filled, "########################", kWidth - filled, "", 100 * frac, rate / scale_,
               unit_.c_str(), eta / 60, eta % 60);
  std::fflush(stderr);
}

void ProgressBar::finish() {
  if (!enabled_) return;
  draw(last_done_);
  std::fputc('\n', stderr);
}

}  // namespace optiq
