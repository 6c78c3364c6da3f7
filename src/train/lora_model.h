// A frozen base model with trainable LoRA factors on some of its projections: the training
// forward pass (the engine's architectures, computed by train/grad_ops.h) and its backward pass
// down to the factors. Nothing of the base is trained or copied: its weights stay in their
// stored (quantized) type and are dequantized tile by tile for each product, the QLoRA setting.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "engine/model.h"
#include "train/grad_ops.h"

namespace optiq::train {

// The projections of a block LoRA can adapt (the --target-modules names).
enum class Module { Q, K, V, O, Gate, Up, Down };
inline constexpr Module kAllModules[] = {Module::Q, Module::K, Module::V, Module::O,
                                         Module::Gate, Module::Up, Module::Down};
std::optional<Module> parse_module(std::string_view name);  // "q", "k", "v", "o", "gate", "up", "down"
std::string_view module_name(Module m);
std::string_view module_gguf_name(Module m);  // "attn_q", ..., "ffn_down": blk.N.<this>.weight
const engine::Weight& module_weight(const engine::Layer& layer, Module m);

// One adapted projection's trainable factors: ΔW = scale · B·A.
template <typename T>
struct LoraFactors {
  const engine::Weight* target = nullptr;  // the frozen base weight it adds to
  int64_t layer = 0;                       // block index
  Module module = Module::Q;
  LowRankShape shape;                      // n_in, n_out of the target; rank; scale (alpha / rank)
  std::vector<T> a;                        // [rank, n_in] LoRA's A
  std::vector<T> b;                        // [n_out, rank] LoRA's B
  std::vector<T> grad_a;                   // [rank, n_in] dLoss/dA, accumulated by backward passes
  std::vector<T> grad_b;                   // [n_out, rank]
};

template <typename T>
using TrainableAdapter = std::vector<LoraFactors<T>>;

// One training sequence: row t reads tokens[0..t] and is scored on labels[t] (the next token,
// or -1 where the row is not trained on: a masked prompt, the last row).
struct TrainSequence {
  std::span<const int32_t> tokens;  // [len]
  std::span<const int32_t> labels;  // [len]
};

// Σ over labelled rows of the cross-entropy (nats) of `seqs` under the base plus `adapter`.
// When `gradients` is set, adds weight · d(that sum)/d(factors) to every factor's grad_a and
// grad_b (weight = 1 / labelled rows of the whole optimizer step gives the mean's gradient
// under accumulation). `checkpoint`: keep only each block's input during the forward and
// recompute the block's activations in the backward (memory ~ n_layer · tokens · n_embd
// instead of every activation, for one more forward's work). Sequences are laid end to end for
// the products and attend each within itself. Throws std::invalid_argument for a token outside
// the vocabulary, a sequence longer than the trained context or mismatched spans.
// `times`, when given, accumulates the seconds spent in each part of the pass.
struct PassTimes {
  double forward = 0;   // embedding and blocks, forward
  double head = 0;      // final norm, vocabulary head, cross-entropy and their gradient
  double backward = 0;  // blocks, backward (with checkpointing: their recomputed forward too)
};
template <typename T>
double lora_loss(const engine::Model& model, TrainableAdapter<T>& adapter, std::span<const TrainSequence> seqs,
                 bool gradients, double weight, bool checkpoint, PassTimes* times = nullptr);

}  // namespace optiq::train
