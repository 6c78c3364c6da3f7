#include "train/adamw.h"

#include <cmath>
#include <numbers>

namespace optiq::train {

void adamw_update(const AdamWOptions& opt, double lr, int64_t step, std::span<float> param, std::span<const float> grad,
                  std::span<float> m, std::span<float> v) {
  const double c1 = 1.0 - std::pow(opt.beta1, static_cast<double>(step));
  const double c2 = 1.0 - std::pow(opt.beta2, static_cast<double>(step));
  for (size_t i = 0; i < param.size(); ++i) {
    const double g = grad[i];
    const double mi = opt.beta1 * m[i] + (1.0 - opt.beta1) * g;
    const double vi = opt.beta2 * v[i] + (1.0 - opt.beta2) * g * g;
    m[i] = static_cast<float>(mi);
    v[i] = static_cast<float>(vi);
    const double p = param[i];
    param[i] = static_cast<float>(p - lr * (opt.weight_decay * p + (mi / c1) / (std::sqrt(vi / c2) + opt.eps)));
  }
}

std::optional<LrSchedule> parse_lr_schedule(std::string_view name) {
  if (name == "constant") return LrSchedule::Constant;
  if (name == "cosine") return LrSchedule::Cosine;
  return std::nullopt;
}

std::string_view lr_schedule_name(LrSchedule s) { return s == LrSchedule::Constant ? "constant" : "cosine"; }

double learning_rate(LrSchedule s, double lr, int64_t warmup, int64_t step, int64_t total) {
  if (step < warmup) return lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  if (s == LrSchedule::Constant || total <= warmup) return lr;
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(total - warmup);
  return lr * 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
}

}  // namespace optiq::train
