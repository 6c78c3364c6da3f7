// LoRA rank per adapted projection for `optiq lora train --rank R --rank-scaling RULE`. The
// projections of a mixed-precision model do not matter alike: `optiq convert` gives more bits to
// the tensors whose quantization hurts the output most, and its sensitivity run measured that
// hurt as a KL per tensor. The rules spend the parameters of uniform rank R differently, never
// more of them:
//   uniform: rank R everywhere;
//   by_bits: rank ∝ the tensor's bits per weight (8 bits gets twice the rank of 4): the bits the
//            allocator gave a tensor stand for how much the model depends on it;
//   by_kl:   rank ∝ sqrt(KL of the tensor, nats). KL spans orders of magnitude between tensors;
//            proportional to KL itself, the few most sensitive tensors would take the whole
//            budget (up to the cap) and leave the rest at rank 1, while the square root still
//            ranks them first.
// Also here: the readers of those signals (bits per weight of a model or of a convert report,
// KL from a convert folder).
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model.h"

namespace optiq::train {

enum class RankScaling { Uniform, ByBits, ByKl };

// "uniform", "by_bits", "by_kl" (the --rank-scaling values); nullopt for anything else.
std::optional<RankScaling> parse_rank_scaling(std::string_view name);
std::string_view rank_scaling_name(RankScaling rule);

// One projection to adapt.
struct RankTarget {
  std::string name;    // GGUF weight name, e.g. "blk.3.attn_q.weight", for messages
  int64_t n_in = 0;    // the weight's row length (input features)
  int64_t n_out = 0;   // the weight's rows (output features)
  double signal = 0;   // bits per weight (by_bits) or KL in nats (by_kl); ignored by uniform
};

// The rank of each target (same order). A rank-r adapter on a target holds r·(n_in + n_out)
// parameters; the budget is P = Σ base_rank·(n_in + n_out), uniform's count.
//   uniform: base_rank everywhere (capped by min(n_in, n_out)).
//   by_bits / by_kl: rank_i = clamp(round(c·w_i), 1, cap_i) with w_i = signal_i or sqrt(signal_i)
//     and cap_i = min(4·base_rank, n_in, n_out), for the largest c at which the total stays
//     within P. c is found exactly: rank_i steps from k to k+1 where c·w_i = k + 1/2, so the steps
//     of all targets are walked in order of c (targets stepping at the same c together) until the
//     next one would exceed P. The budget left is then handed out in one pass, +1 to each target
//     that still fits and is below its cap, largest c·w_i - rank_i first (at the c of the step
//     that did not fit; ties to the earlier target). The total is at most P and, unless every
//     target is capped, more than P - max(n_in + n_out).
// Deterministic: the same targets give the same ranks. Throws std::invalid_argument for
// base_rank < 1, a target without positive n_in and n_out, or (by_bits, by_kl) a signal that is
// not positive and finite, naming the target.
std::vector<int64_t> allocate_ranks(std::span<const RankTarget> targets, int64_t base_rank, RankScaling rule);

// GGUF name -> bits per weight of the type each block projection (q/k/v/o, gate/up/down) of
// `model` is stored in (ggml's block bytes · 8 / block weights: 4.5 for Q4_0, 32 for F32).
std::map<std::string, double> bits_per_weight_of(const engine::Model& model);

// GGUF name -> bits per weight of the type `optiq convert` chose for each tensor its
// optiq-report.json lists ("tensors": [{"name", "chosen": "q4_K", ...}]). Throws InputError
// naming the file for a missing or malformed report or an unknown type name.
std::map<std::string, double> bits_from_report(const std::filesystem::path& optiq_report_json);

// GGUF name -> KL (nats) of each tensor an `optiq convert` run measured, from the folder's
// sensitivity.jsonl (the checkpoint of its exact measurements: one mean KL per tensor and
// candidate type; a --fast run writes none). A tensor has one KL per candidate; the one taken is
// the damage the LoRA is trained to repair:
//   - the KL of the type the plan chose for it, when the folder's optiq-report.json lists it and
//     that type was measured;
//   - else the KL of its lowest-bits measured candidate (the most quantization damage the run saw;
//     among types of equal bits, the larger KL).
// A KL of 0 or below (a type whose output equals the reference's, or rounding noise) is raised to
// the smallest positive KL taken, so that every value is a usable by_kl signal and such tensors
// get the smallest ranks. Throws InputError naming the file for a missing or malformed
// checkpoint or report, a tensor the report lists with no measurement, or no positive KL at all.
std::map<std::string, double> kl_from_convert_dir(const std::filesystem::path& convert_dir);

}  // namespace optiq::train
