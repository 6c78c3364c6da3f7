// The operations of a transformer forward pass with their backward passes, for training LoRA
// adapters on a frozen base. Each forward here computes what src/engine/ops.h computes, as a
// smooth function: no rounding of activations to the weight type's Q8/f16 form and no f16 table
// for GELU, so that the backward is the exact derivative of the forward and finite differences
// can check it. The trainer instantiates them in f32; the gradient tests in f64.
//
// Conventions: row-major, one row per token. A backward writes the gradient of its input into
// `dx` (overwriting) unless its name or comment says it accumulates; inputs it needs are the
// forward's inputs and the values the forward saved (named in each signature).
#pragma once

#include <cstdint>
#include <span>

#include "engine/ops.h"
#include "engine/weight.h"

namespace optiq::train {

// c[m, n] = alpha · op(a)·op(b) + beta · c, op(x) = x or xᵀ; a is [m, k] (or [k, m] transposed)
// with row stride lda, b [k, n] (or [n, k]) with ldb, c with ldc. cblas_sgemm / cblas_dgemm on
// one thread (the callers spread work over OpenMP threads themselves).
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// --- RMSNorm: y[t, i] = x[t, i] · r[t] · w[i], r[t] = 1 / sqrt(mean_i x[t, i]² + eps) ---------
// x, y: [rows, n] (y may alias x); w: [n]; inv_rms (saved): [rows] the r[t].
template <typename T>
void rms_norm_forward(const T* x, const float* w, int64_t rows, int64_t n, float eps, T* y, T* inv_rms);
// dx[t, j] = r·w[j]·dy[t, j] − x[t, j]·r³/n · Σ_i dy[t, i]·w[i]·x[t, i]. dx may alias dy.
template <typename T>
void rms_norm_backward(const T* x, const float* w, const T* inv_rms, const T* dy, int64_t rows, int64_t n, T* dx);

// --- Rotary embedding ----------------------------------------------------------------------
// The engine's rope (engine/ops.h) on rows of [rows, n_heads, head_dim], row t at position
// pos[t]; the angles are computed in T. inverse = true rotates by the negative angles, which is
// the backward pass (a rotation's transpose is its inverse).
struct RopeParams {
  engine::RopeType type = engine::RopeType::Norm;
  int64_t n_rot = 0;                    // rotated dims per head
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;
  const float* freq_factors = nullptr;  // [n_rot / 2] or null
};
template <typename T>
void rope_rows(const RopeParams& p, T* x, int64_t rows, int64_t n_heads, int64_t head_dim, const int32_t* pos,
               bool inverse);

// --- Gated feed-forward activations: act = f(gate) · up -----------------------------------
// f = SiLU (SwiGLU) or tanh-approximated GELU (GeGLU). gate, up, act: [n].
template <typename T>
void glu_forward(bool gelu, const T* gate, const T* up, int64_t n, T* act);
// d_gate = d_act · up · f'(gate), d_up = d_act · f(gate).
template <typename T>
void glu_backward(bool gelu, const T* gate, const T* up, const T* d_act, int64_t n, T* d_gate, T* d_up);

// --- Causal grouped-query attention of one sequence ---------------------------------------
// q: [len, n_head, head_dim], k, v: [len, n_head_kv, head_dim] (already rotated), positions
// 0..len-1 of one sequence; token i sees j <= i with i - j < window (window 0: all).
// probs (saved): [n_head, len, len] the softmax weights (0 where masked); out: [len, n_head, head_dim].
struct AttentionShape {
  int64_t len = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t head_dim = 0;
  float scale = 1.0f;  // multiplies q·k
  int64_t window = 0;  // sliding window, 0 = none
};
template <typename T>
void attention_forward(const AttentionShape& s, const T* q, const T* k, const T* v, T* probs, T* out);
// From d_out [len, n_head, head_dim]: dq [len, n_head, head_dim], dk, dv [len, n_head_kv, head_dim]
// (overwritten). Heads run in parallel.
template <typename T>
void attention_backward(const AttentionShape& s, const T* q, const T* k, const T* v, const T* probs, const T* d_out,
                        T* dq, T* dk, T* dv);

// --- Products with a frozen weight of the base model --------------------------------------
// y[t, o] = Σ_i W[o, i]·x[t, i] + bias[o]: W's stored rows (any type the engine multiplies)
// dequantized tile by tile, multiplied in T. x: [n, w.n_in], y: [n, w.n_out].
template <typename T>
void frozen_forward(const engine::Weight& w, const T* x, int64_t n, T* y);
// dx[t, i] += Σ_o dy[t, o]·W[o, i]. dy: [n, w.n_out], dx: [n, w.n_in] (accumulated).
template <typename T>
void frozen_backward(const engine::Weight& w, const T* dy, int64_t n, T* dx);

// --- A LoRA update on a projection: y += scale · (x·Aᵀ)·Bᵀ --------------------------------
// a: [rank, n_in], b: [n_out, rank] (PEFT's lora_A and lora_B). u (saved): [n, rank] = x·Aᵀ.
struct LowRankShape {
  int64_t n_in = 0;
  int64_t n_out = 0;
  int64_t rank = 0;
  float scale = 1.0f;
};
template <typename T>
void low_rank_forward(const LowRankShape& s, const T* a, const T* b, const T* x, int64_t n, T* u, T* y);
// grad_a [rank, n_in] and grad_b [n_out, rank] accumulated; dx [n, n_in] accumulated.
template <typename T>
void low_rank_backward(const LowRankShape& s, const T* a, const T* b, const T* x, const T* u, const T* dy,
                       int64_t n, T* grad_a, T* grad_b, T* dx);

// --- Vocabulary head and cross-entropy ---------------------------------------------------
// For the rows of hn [n, n_embd] (the final-normed residual stream) with labels[t] >= 0:
// logits = head·hn (softcapped as cap·tanh(logit/cap) when cap > 0), loss_t = logsumexp −
// logit[label]. Returns Σ_t loss_t (nats). When d_hn is not null, adds weight · dΣloss/dhn to
// it ([n, n_embd]). The vocabulary is walked in tiles with a running logsumexp, so memory is
// O(n · tile), never [n, n_vocab]; the backward re-computes each tile's logits.
template <typename T>
double head_cross_entropy(const engine::Weight& head, float softcap, const T* hn, std::span<const int32_t> labels,
                          double weight, T* d_hn);

}  // namespace optiq::train
