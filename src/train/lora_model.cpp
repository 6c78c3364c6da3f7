#include "train/lora_model.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <stdexcept>
#include <string>

namespace optiq::train {

std::optional<Module> parse_module(std::string_view name) {
  for (Module m : kAllModules)
    if (module_name(m) == name) return m;
  return std::nullopt;
}

std::string_view module_name(Module m) {
  switch (m) {
    case Module::Q: return "q";
    case Module::K: return "k";
    case Module::V: return "v";
    case Module::O: return "o";
    case Module::Gate: return "gate";
    case Module::Up: return "up";
    case Module::Down: return "down";
  }
  return "?";
}

std::string_view module_gguf_name(Module m) {
  switch (m) {
    case Module::Q: return "attn_q";
    case Module::K: return "attn_k";
    case Module::V: return "attn_v";
    case Module::O: return "attn_output";
    case Module::Gate: return "ffn_gate";
    case Module::Up: return "ffn_up";
    case Module::Down: return "ffn_down";
  }
  return "?";
}

const engine::Weight& module_weight(const engine::Layer& layer, Module m) {
  switch (m) {
    case Module::Q: return layer.wq;
    case Module::K: return layer.wk;
    case Module::V: return layer.wv;
    case Module::O: return layer.wo;
    case Module::Gate: return layer.ffn_gate;
    case Module::Up: return layer.ffn_up;
    case Module::Down: return layer.ffn_down;
  }
  throw std::invalid_argument("module_weight: unknown module");
}

namespace {

constexpr size_t kModules = std::size(kAllModules);

// A block's activations that its backward pass reads.
template <typename T>
struct BlockTape {
  std::vector<T> x_in;               // [n, E] the block's input
  std::vector<T> h1, r1;             // [n, E] attention-normed input; [n] its 1/rms
  std::vector<T> q_pre, k_pre;       // [n, n_q], [n, n_kv] projections before the per-head norm (qwen3, gemma3)
  std::vector<T> rq, rk;             // [n · n_head], [n · n_head_kv] the per-head norms' 1/rms
  std::vector<T> q, k, v;            // [n, n_q], [n, n_kv], [n, n_kv] attention inputs (normed, rotated)
  std::vector<T> probs;              // each sequence's [n_head, len, len] softmax weights, one after another
  std::vector<T> o;                  // [n, n_q] attention output
  std::vector<T> attn_raw, r_pa;     // [n, E] output projection before the post-attention norm; [n] (gemma3)
  std::vector<T> x_mid;              // [n, E] after the attention residual
  std::vector<T> h2, r2;             // [n, E] feed-forward-normed; [n]
  std::vector<T> gate, up, act;      // [n, n_ff] gate and up projections, their gated product
  std::vector<T> ffn_raw, r_pf;      // [n, E] down projection before the post-feed-forward norm; [n] (gemma3)
  std::array<std::vector<T>, kModules> lora_u;  // per module [n, rank]: x·Aᵀ of its adapter
};

// What every block of one pass shares.
template <typename T>
struct Pass {
  const engine::Model& model;
  int64_t n = 0;                        // rows: every sequence's tokens
  std::vector<int32_t> pos;             // [n] each row's position in its sequence
  std::vector<int64_t> seq_start;       // [sequences] first row
  std::vector<int64_t> seq_len;         // [sequences]
  std::vector<std::array<LoraFactors<T>*, kModules>> factors;  // [n_layer][module] or null

  const engine::HParams& hp() const { return model.hp; }
};

template <typename T>
void project(const Pass<T>& p, int64_t il, Module m, const T* x, T* y, BlockTape<T>& tape) {
  frozen_forward(module_weight(p.model.layers[static_cast<size_t>(il)], m), x, p.n, y);
  if (LoraFactors<T>* f = p.factors[static_cast<size_t>(il)][static_cast<size_t>(m)]) {
    auto& u = tape.lora_u[static_cast<size_t>(m)];
    u.resize(static_cast<size_t>(p.n * f->shape.rank));
    low_rank_forward(f->shape, f->a.data(), f->b.data(), x, p.n, u.data(), y);
  }
}

// dx += dLoss/dx of y = project(x), from dy; the adapter's gradients accumulate.
template <typename T>
void project_back(const Pass<T>& p, int64_t il, Module m, const T* x, const T* dy, T* dx, const BlockTape<T>& tape) {
  frozen_backward(module_weight(p.model.layers[static_cast<size_t>(il)], m), dy, p.n, dx);
  if (LoraFactors<T>* f = p.factors[static_cast<size_t>(il)][static_cast<size_t>(m)])
    low_rank_backward(f->shape, f->a.data(), f->b.data(), x, tape.lora_u[static_cast<size_t>(m)].data(), dy, p.n,
                      f->grad_a.data(), f->grad_b.data(), dx);
}

template <typename T>
std::vector<T> zeros(int64_t n) {
  return std::vector<T>(static_cast<size_t>(n), T(0));
}

RopeParams rope_of(const engine::Model& m, int64_t il) {
  const engine::HParams& hp = m.hp;
  const bool swa = hp.swa_layers[static_cast<size_t>(il)];
  return {hp.rope_type, hp.n_rot, swa ? hp.rope_freq_base_swa : hp.rope_freq_base, swa ? 1.0f : hp.rope_freq_scale,
          m.rope_freqs.empty() ? nullptr : m.rope_freqs.data()};
}

AttentionShape attention_of(const engine::HParams& hp, int64_t il, int64_t len) {
  return {len, hp.n_head, hp.n_head_kv, hp.head_dim, hp.attn_scale, hp.swa_layers[static_cast<size_t>(il)] ? hp.n_swa : 0};
}

// Block il on x [n, E], in place, recording what its backward needs.
template <typename T>
void block_forward(const Pass<T>& p, int64_t il, T* x, BlockTape<T>& t) {
  const engine::HParams& hp = p.hp();
  const engine::Layer& L = p.model.layers[static_cast<size_t>(il)];
  const int64_t n = p.n, E = hp.n_embd, D = hp.head_dim, F = hp.n_ff;
  const int64_t n_q = hp.n_head * D, n_kv = hp.n_head_kv * D;
  const bool qk_norm = !L.attn_q_norm.empty();
  t.x_in.assign(x, x + n * E);
  t.h1.resize(static_cast<size_t>(n * E)), t.r1.resize(static_cast<size_t>(n));
  rms_norm_forward(x, L.attn_norm.data(), n, E, hp.rms_eps, t.h1.data(), t.r1.data());
  t.q.resize(static_cast<size_t>(n * n_q)), t.k.resize(static_cast<size_t>(n * n_kv)), t.v.resize(t.k.size());
  project(p, il, Module::Q, t.h1.data(), t.q.data(), t);
  project(p, il, Module::K, t.h1.data(), t.k.data(), t);
  project(p, il, Module::V, t.h1.data(), t.v.data(), t);
  if (qk_norm) {
    t.q_pre = t.q, t.k_pre = t.k;
    t.rq.resize(static_cast<size_t>(n * hp.n_head)), t.rk.resize(static_cast<size_t>(n * hp.n_head_kv));
    rms_norm_forward(t.q_pre.data(), L.attn_q_norm.data(), n * hp.n_head, D, hp.rms_eps, t.q.data(), t.rq.data());
    rms_norm_forward(t.k_pre.data(), L.attn_k_norm.data(), n * hp.n_head_kv, D, hp.rms_eps, t.k.data(), t.rk.data());
  }
  const RopeParams rope = rope_of(p.model, il);
  rope_rows(rope, t.q.data(), n, hp.n_head, D, p.pos.data(), false);
  rope_rows(rope, t.k.data(), n, hp.n_head_kv, D, p.pos.data(), false);
  size_t probs_size = 0;
  for (int64_t len : p.seq_len) probs_size += static_cast<size_t>(hp.n_head * len * len);
  t.probs.resize(probs_size);
  t.o.resize(static_cast<size_t>(n * n_q));
  for (size_t s = 0, pr = 0; s < p.seq_len.size(); ++s) {
    const int64_t r0 = p.seq_start[s], len = p.seq_len[s];
    attention_forward(attention_of(hp, il, len), t.q.data() + r0 * n_q, t.k.data() + r0 * n_kv, t.v.data() + r0 * n_kv,
                      t.probs.data() + pr, t.o.data() + r0 * n_q);
    pr += static_cast<size_t>(hp.n_head * len * len);
  }
  t.attn_raw.resize(static_cast<size_t>(n * E));
  project(p, il, Module::O, t.o.data(), t.attn_raw.data(), t);
  t.x_mid.assign(x, x + n * E);
  if (!L.attn_post_norm.empty()) {
    std::vector<T> normed(static_cast<size_t>(n * E));
    t.r_pa.resize(static_cast<size_t>(n));
    rms_norm_forward(t.attn_raw.data(), L.attn_post_norm.data(), n, E, hp.rms_eps, normed.data(), t.r_pa.data());
    for (int64_t i = 0; i < n * E; ++i) t.x_mid[static_cast<size_t>(i)] += normed[static_cast<size_t>(i)];
  } else {
    for (int64_t i = 0; i < n * E; ++i) t.x_mid[static_cast<size_t>(i)] += t.attn_raw[static_cast<size_t>(i)];
  }
  t.h2.resize(static_cast<size_t>(n * E)), t.r2.resize(static_cast<size_t>(n));
  rms_norm_forward(t.x_mid.data(), L.ffn_norm.data(), n, E, hp.rms_eps, t.h2.data(), t.r2.data());
  t.gate.resize(static_cast<size_t>(n * F)), t.up.resize(t.gate.size()), t.act.resize(t.gate.size());
  project(p, il, Module::Gate, t.h2.data(), t.gate.data(), t);
  project(p, il, Module::Up, t.h2.data(), t.up.data(), t);
  const bool gelu = hp.ffn_act == engine::FfnActivation::GeluTanh;
  glu_forward(gelu, t.gate.data(), t.up.data(), n * F, t.act.data());
  t.ffn_raw.resize(static_cast<size_t>(n * E));
  project(p, il, Module::Down, t.act.data(), t.ffn_raw.data(), t);
  const T* ffn_out = t.ffn_raw.data();
  std::vector<T> normed;
  if (!L.ffn_post_norm.empty()) {
    normed.resize(static_cast<size_t>(n * E)), t.r_pf.resize(static_cast<size_t>(n));
    rms_norm_forward(t.ffn_raw.data(), L.ffn_post_norm.data(), n, E, hp.rms_eps, normed.data(), t.r_pf.data());
    ffn_out = normed.data();
  }
  for (int64_t i = 0; i < n * E; ++i) x[i] = t.x_mid[static_cast<size_t>(i)] + ffn_out[i];
}

// dx [n, E]: dLoss/d(block output) in, dLoss/d(block input) out.
template <typename T>
void block_backward(const Pass<T>& p, int64_t il, const BlockTape<T>& t, T* dx) {
  const engine::HParams& hp = p.hp();
  const engine::Layer& L = p.model.layers[static_cast<size_t>(il)];
  const int64_t n = p.n, E = hp.n_embd, D = hp.head_dim, F = hp.n_ff;
  const int64_t n_q = hp.n_head * D, n_kv = hp.n_head_kv * D;
  // feed-forward branch
  std::vector<T> d_raw(dx, dx + n * E);  // d(ffn_raw), then d(attn_raw)
  if (!L.ffn_post_norm.empty())
    rms_norm_backward(t.ffn_raw.data(), L.ffn_post_norm.data(), t.r_pf.data(), dx, n, E, d_raw.data());
  auto d_act = zeros<T>(n * F);
  project_back(p, il, Module::Down, t.act.data(), d_raw.data(), d_act.data(), t);
  std::vector<T> d_gate(static_cast<size_t>(n * F)), d_up(d_gate.size());
  const bool gelu = hp.ffn_act == engine::FfnActivation::GeluTanh;
  glu_backward(gelu, t.gate.data(), t.up.data(), d_act.data(), n * F, d_gate.data(), d_up.data());
  auto d_h = zeros<T>(n * E);  // d(h2), then d(h1)
  project_back(p, il, Module::Gate, t.h2.data(), d_gate.data(), d_h.data(), t);
  project_back(p, il, Module::Up, t.h2.data(), d_up.data(), d_h.data(), t);
  std::vector<T> d_norm(static_cast<size_t>(n * E));
  rms_norm_backward(t.x_mid.data(), L.ffn_norm.data(), t.r2.data(), d_h.data(), n, E, d_norm.data());
  for (int64_t i = 0; i < n * E; ++i) dx[i] += d_norm[static_cast<size_t>(i)];  // now d(x_mid)
  // attention branch
  d_raw.assign(dx, dx + n * E);
  if (!L.attn_post_norm.empty())
    rms_norm_backward(t.attn_raw.data(), L.attn_post_norm.data(), t.r_pa.data(), dx, n, E, d_raw.data());
  auto d_o = zeros<T>(n * n_q);
  project_back(p, il, Module::O, t.o.data(), d_raw.data(), d_o.data(), t);
  std::vector<T> dq(static_cast<size_t>(n * n_q)), dk(static_cast<size_t>(n * n_kv)), dv(dk.size());
  for (size_t s = 0, pr = 0; s < p.seq_len.size(); ++s) {
    const int64_t r0 = p.seq_start[s], len = p.seq_len[s];
    attention_backward(attention_of(hp, il, len), t.q.data() + r0 * n_q, t.k.data() + r0 * n_kv,
                       t.v.data() + r0 * n_kv, t.probs.data() + pr, d_o.data() + r0 * n_q, dq.data() + r0 * n_q,
                       dk.data() + r0 * n_kv, dv.data() + r0 * n_kv);
    pr += static_cast<size_t>(hp.n_head * len * len);
  }
  const RopeParams rope = rope_of(p.model, il);
  rope_rows(rope, dq.data(), n, hp.n_head, D, p.pos.data(), true);
  rope_rows(rope, dk.data(), n, hp.n_head_kv, D, p.pos.data(), true);
  if (!L.attn_q_norm.empty()) {
    rms_norm_backward(t.q_pre.data(), L.attn_q_norm.data(), t.rq.data(), dq.data(), n * hp.n_head, D, dq.data());
    rms_norm_backward(t.k_pre.data(), L.attn_k_norm.data(), t.rk.data(), dk.data(), n * hp.n_head_kv, D, dk.data());
  }
  std::fill(d_h.begin(), d_h.end(), T(0));
  project_back(p, il, Module::Q, t.h1.data(), dq.data(), d_h.data(), t);
  project_back(p, il, Module::K, t.h1.data(), dk.data(), d_h.data(), t);
  project_back(p, il, Module::V, t.h1.data(), dv.data(), d_h.data(), t);
  rms_norm_backward(t.x_in.data(), L.attn_norm.data(), t.r1.data(), d_h.data(), n, E, d_norm.data());
  for (int64_t i = 0; i < n * E; ++i) dx[i] += d_norm[static_cast<size_t>(i)];
}

}  // namespace

template <typename T>
double lora_loss(const engine::Model& model, TrainableAdapter<T>& adapter, std::span<const TrainSequence> seqs,
                 bool gradients, double weight, bool checkpoint, PassTimes* times) {
  const engine::HParams& hp = model.hp;
  using Clock = std::chrono::steady_clock;
  auto lap = [last = Clock::now()](double PassTimes::* part, PassTimes* t) mutable {
    const auto now = Clock::now();
    if (t) t->*part += std::chrono::duration<double>(now - last).count();
    last = now;
  };
  Pass<T> p{model, 0, {}, {}, {}, {}};
  p.factors.assign(static_cast<size_t>(hp.n_layer), {});
  int64_t first_adapted = hp.n_layer;  // the backward stops at the lowest adapted block
  for (LoraFactors<T>& f : adapter) {
    if (f.layer < 0 || f.layer >= hp.n_layer || f.target != &module_weight(model.layers[static_cast<size_t>(f.layer)], f.module))
      throw std::invalid_argument("lora_loss: an adapter factor does not target this model's weight");
    p.factors[static_cast<size_t>(f.layer)][static_cast<size_t>(f.module)] = &f;
    first_adapted = std::min(first_adapted, f.layer);
  }
  std::vector<int32_t> tokens, labels;
  for (const TrainSequence& s : seqs) {
    if (s.tokens.size() != s.labels.size() || s.tokens.empty())
      throw std::invalid_argument("lora_loss: a sequence needs one label per token");
    if (static_cast<int64_t>(s.tokens.size()) > hp.n_ctx_train)
      throw std::invalid_argument("lora_loss: a sequence of " + std::to_string(s.tokens.size()) +
                                  " tokens is longer than the trained context");
    for (int32_t id : s.tokens)
      if (id < 0 || id >= hp.n_vocab) throw std::invalid_argument("lora_loss: token id outside the vocabulary");
    p.seq_start.push_back(p.n);
    p.seq_len.push_back(static_cast<int64_t>(s.tokens.size()));
    for (size_t i = 0; i < s.tokens.size(); ++i) p.pos.push_back(static_cast<int32_t>(i));
    tokens.insert(tokens.end(), s.tokens.begin(), s.tokens.end());
    labels.insert(labels.end(), s.labels.begin(), s.labels.end());
    p.n += static_cast<int64_t>(s.tokens.size());
  }
  if (p.n == 0) throw std::invalid_argument("lora_loss: no sequences");
  const int64_t n = p.n, E = hp.n_embd;

  std::vector<float> embedded(static_cast<size_t>(n * E));
  engine::get_rows(model.token_embd, tokens, embedded.data());
  std::vector<T> x(static_cast<size_t>(n * E));
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<T>(embedded[i]) * static_cast<T>(hp.embd_scale);

  // Full tapes, or (checkpointing) only each block's input, from which its tape is rebuilt.
  std::vector<BlockTape<T>> tapes(static_cast<size_t>(hp.n_layer));
  for (int64_t il = 0; il < hp.n_layer; ++il) {
    BlockTape<T>& t = tapes[static_cast<size_t>(il)];
    const bool keep = gradients && il >= first_adapted;
    if (keep && checkpoint) {
      t.x_in = x;
      BlockTape<T> scratch;
      block_forward(p, il, x.data(), scratch);
    } else {
      block_forward(p, il, x.data(), t);
      if (!keep) t = BlockTape<T>{};
    }
  }
  lap(&PassTimes::forward, times);
  std::vector<T> hn(static_cast<size_t>(n * E)), r_out(static_cast<size_t>(n));
  rms_norm_forward(x.data(), model.output_norm.data(), n, E, hp.rms_eps, hn.data(), r_out.data());
  std::vector<T> d_hn;
  if (gradients) d_hn.assign(hn.size(), T(0));
  const double loss = head_cross_entropy(model.head(), hp.logit_softcap, hn.data(), labels, weight,
                                         gradients ? d_hn.data() : nullptr);
  std::vector<T> dx;
  if (gradients) {
    dx.resize(static_cast<size_t>(n * E));
    rms_norm_backward(x.data(), model.output_norm.data(), r_out.data(), d_hn.data(), n, E, dx.data());
  }
  lap(&PassTimes::head, times);
  if (!gradients) return loss;

  for (int64_t il = hp.n_layer - 1; il >= first_adapted; --il) {
    BlockTape<T>& t = tapes[static_cast<size_t>(il)];
    if (checkpoint) {
      std::vector<T> block_x = t.x_in;
      block_forward(p, il, block_x.data(), t);
    }
    block_backward(p, il, t, dx.data());
    t = BlockTape<T>{};
  }
  lap(&PassTimes::backward, times);
  return loss;
}

template double lora_loss<float>(const engine::Model&, TrainableAdapter<float>&, std::span<const TrainSequence>, bool,
                                 double, bool, PassTimes*);
template double lora_loss<double>(const engine::Model&, TrainableAdapter<double>&, std::span<const TrainSequence>, bool,
                                  double, bool, PassTimes*);

}  // namespace optiq::train
