// Low-rank updates of weight matrices applied unmerged (LoRA at inference): the product of a
// weight with its deltas is y = W·x + Σ_d scale_d · B_d·(A_d·x), W staying in its stored
// (quantized) type. The factors are held in f16 (half the bytes a decode step streams; llama.cpp's
// adapter converter writes f16 by default) and multiplied with f32 activations, accumulating in
// f32. Adapters (src/lora) resolve to these; the engine applies them per sequence.
#pragma once

#include <cstdint>
#include <span>

#include "engine/weight.h"

namespace optiq::engine {

// The largest rank the engine applies (ranks in use are 4 to 256).
inline constexpr int64_t kMaxLowRank = 1024;

struct LowRankDelta {
  const Weight* target = nullptr;  // the base weight it adds to (a block weight of the model)
  int64_t rank = 0;                // r
  const uint16_t* a = nullptr;     // [rank, target->n_in] f16: x -> r values (LoRA's A)
  const uint16_t* b_t = nullptr;   // [rank, target->n_out] f16: r values -> outputs (LoRA's B, transposed)
  float scale = 1.0f;              // the adapter's alpha / r times the user's scale
};

// The deltas one sequence runs with; empty: the base weights alone.
using LowRankDeltas = std::span<const LowRankDelta>;

// y[t, :] += d.scale · B·(A·x[t, :]) for t < n_tokens. x: [n_tokens, n_in], y: [n_tokens, n_out].
// u = scale · A·x, then y += u_j · (row j of Bᵀ) as fused multiply-adds, f32 arithmetic on the
// f16 factors (F16C where the CPU has it); the rows of A, then chunks of outputs, spread over
// the engine's threads.
void add_low_rank(const LowRankDelta& d, const float* x, int64_t n_tokens, float* y);

}  // namespace optiq::engine
