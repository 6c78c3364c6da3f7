// AdamW (Loshchilov & Hutter: Adam with decoupled weight decay) and the learning-rate schedules
// of `optiq lora train`, as PyTorch's torch.optim.AdamW and Hugging Face's schedulers define
// them, so that hyper-parameters carry over from those trainers.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace optiq::train {

struct AdamWOptions {
  double beta1 = 0.9;          // decay of the first-moment (mean) estimate
  double beta2 = 0.999;        // decay of the second-moment estimate
  double eps = 1e-8;           // added to sqrt(v̂)
  double weight_decay = 0.0;   // decoupled: param -= lr · weight_decay · param each step
};

// One update of param [n] from grad [n]; m, v [n] are the moment estimates (zero before the
// first step), `step` >= 1 the update's number (bias correction).
//   m = β1·m + (1-β1)·g;  v = β2·v + (1-β2)·g²
//   param -= lr · (weight_decay · param + m̂ / (sqrt(v̂) + eps)),  m̂ = m / (1-β1^step), v̂ likewise.
void adamw_update(const AdamWOptions& opt, double lr, int64_t step, std::span<float> param, std::span<const float> grad,
                  std::span<float> m, std::span<float> v);

enum class LrSchedule { Constant, Cosine };
std::optional<LrSchedule> parse_lr_schedule(std::string_view name);  // "constant", "cosine"
std::string_view lr_schedule_name(LrSchedule s);

// The learning rate of optimizer step `step` (0-based) of `total`: linear warm-up from
// lr / warmup to lr over the first `warmup` steps, then constant or a cosine decay to 0 at
// `total` (Hugging Face's get_cosine_schedule_with_warmup).
double learning_rate(LrSchedule s, double lr, int64_t warmup, int64_t step, int64_t total);

}  // namespace optiq::train
