#include "engine/model.h"

#include <cmath>
#include <exception>

#include "engine/attention_blocks.h"
#include "engine/attention_turbo.h"
#include "engine/ops.h"
#include "engine/threads.h"
#include "util/error.h"

namespace optiq::engine {
namespace {

int64_t need_int(const ModelSource& src, const std::string& key) {
  const auto v = src.metadata.get_int(key);
  if (!v) throw InputError(src.path, std::nullopt, "metadata key " + key + " is missing or not an integer");
  if (*v <= 0) throw InputError(src.path, std::nullopt, "metadata key " + key + " must be positive");
  return *v;
}

int64_t opt_int(const ModelSource& src, const std::string& key, int64_t fallback) {
  const auto v = src.metadata.get_int(key);
  if (v && *v <= 0) throw InputError(src.path, std::nullopt, "metadata key " + key + " must be positive");
  return v ? *v : fallback;
}

std::string blk(int64_t i, const char* name) { return "blk." + std::to_string(i) + "." + name; }

float opt_float(const ModelSource& src, const std::string& key, float fallback) {
  const auto v = src.metadata.get_double(key);
  return v ? static_cast<float>(*v) : fallback;
}

}  // namespace

Model load_model(const ModelSource& src) {
  const std::string name = src.architecture();
  const auto arch = arch_from_gguf_name(name);
  if (!arch)
    throw InputError(src.path, std::nullopt,
                     "the engine runs llama, qwen2, qwen3 and gemma3 models; this one is \"" + name + "\"");
  const std::string a = name + ".";
  Model m;
  HParams& hp = m.hp;
  hp.arch = *arch;
  hp.n_embd = need_int(src, a + "embedding_length");
  hp.n_layer = need_int(src, a + "block_count");
  hp.n_ff = need_int(src, a + "feed_forward_length");
  hp.n_head = need_int(src, a + "attention.head_count");
  hp.n_head_kv = opt_int(src, a + "attention.head_count_kv", hp.n_head);
  if (hp.n_head % hp.n_head_kv != 0)
    throw InputError(src.path, std::nullopt, a + "attention.head_count (" + std::to_string(hp.n_head) +
                                                 ") is not a multiple of head_count_kv (" +
                                                 std::to_string(hp.n_head_kv) + ")");
  hp.head_dim = opt_int(src, a + "attention.key_length", hp.n_embd / hp.n_head);
  if (opt_int(src, a + "attention.value_length", hp.head_dim) != hp.head_dim)
    throw InputError(src.path, std::nullopt, a + "attention.value_length differs from key_length");
  hp.n_rot = opt_int(src, a + "rope.dimension_count", hp.head_dim);
  if (hp.n_rot != hp.head_dim)  // llama.cpp asserts the same for these architectures
    throw InputError(src.path, std::nullopt, a + "rope.dimension_count (" + std::to_string(hp.n_rot) +
                                                 ") differs from the head width (" +
                                                 std::to_string(hp.head_dim) + ")");
  hp.n_ctx_train = opt_int(src, a + "context_length", 2048);
  hp.rms_eps = opt_float(src, a + "attention.layer_norm_rms_epsilon", hp.rms_eps);
  hp.rope_freq_base = opt_float(src, a + "rope.freq_base", hp.rope_freq_base);
  const std::string scaling = src.metadata.get_string(a + "rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    const double factor = src.metadata.get_double(a + "rope.scaling.factor").value_or(1.0);
    if (!(factor > 0)) throw InputError(src.path, std::nullopt, a + "rope.scaling.factor must be positive");
    hp.rope_freq_scale = static_cast<float>(1.0 / factor);
  } else if (scaling != "none") {
    throw InputError(src.path, std::nullopt, "rope scaling \"" + scaling + "\" is not supported yet");
  }
  if (auto fs = src.metadata.get_double(a + "rope.scaling.factor"); fs && scaling == "none" && *fs != 1.0)
    throw InputError(src.path, std::nullopt, a + "rope.scaling.factor without a scaling type");
  hp.rope_type = hp.arch == Arch::Llama ? RopeType::Norm : RopeType::Neox;
  hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.head_dim));
  hp.swa_layers.assign(static_cast<size_t>(hp.n_layer), false);
  if (hp.arch == Arch::Gemma3) {
    hp.embd_scale = std::sqrt(static_cast<float>(hp.n_embd));
    hp.ffn_act = FfnActivation::GeluTanh;
    hp.logit_softcap = opt_float(src, a + "final_logit_softcapping", 0.0f);
    // Gemma 3 27B (62 layers) scales queries by the model width per head, not the head width.
    if (hp.n_layer == 62) hp.attn_scale = 1.0f / std::sqrt(static_cast<float>(hp.n_embd / hp.n_head));
    hp.n_swa = opt_int(src, a + "attention.sliding_window", 0);
    if (hp.n_swa > 0) {
      hp.rope_freq_base_swa = opt_float(src, a + "rope.freq_base_swa", hp.rope_freq_base_swa);
      const GgufValue* pattern = src.metadata.find(a + "attention.sliding_window_pattern");
      if (const GgufArray* arr = pattern ? pattern->as_array() : nullptr) {
        const auto& items = arr->items;
        if (static_cast<int64_t>(items.size()) != hp.n_layer)
          throw InputError(src.path, std::nullopt,
                           a + "attention.sliding_window_pattern has " + std::to_string(items.size()) +
                               " entries for " + std::to_string(hp.n_layer) + " layers");
        for (size_t i = 0; i < items.size(); ++i) {
          const auto b = items[i].as_bool();
          if (!b) throw InputError(src.path, std::nullopt, a + "attention.sliding_window_pattern is not an array of bools");
          hp.swa_layers[i] = *b;
        }
      } else {
        // A period: every period-th layer is global, the others local (llama.cpp's default 6).
        const int64_t period = opt_int(src, a + "attention.sliding_window_pattern", 6);  // positive
        for (int64_t i = 0; i < hp.n_layer; ++i) hp.swa_layers[static_cast<size_t>(i)] = i % period < period - 1;
      }
    }
  }

  const SourceTensor* embd = src.find("token_embd.weight");
  if (!embd || embd->shape.size() != 2 || embd->shape[0] != static_cast<uint64_t>(hp.n_embd))
    throw InputError(src.path, std::nullopt, "token_embd.weight is missing or not [n_embd, n_vocab]");
  hp.n_vocab = static_cast<int64_t>(embd->shape[1]);
  m.token_embd = load_weight(src, "token_embd.weight", hp.n_embd, hp.n_vocab);
  m.output_norm = load_vector(src, "output_norm.weight", hp.n_embd);
  m.output = load_weight(src, "output.weight", hp.n_embd, hp.n_vocab, /*required=*/false);
  m.rope_freqs = load_vector(src, "rope_freqs.weight", hp.n_rot / 2, /*required=*/false);

  const int64_t n_q = hp.n_head * hp.head_dim, n_kv = hp.n_head_kv * hp.head_dim;
  const bool gemma = hp.arch == Arch::Gemma3, qk_norm = gemma || hp.arch == Arch::Qwen3;
  m.layers.resize(static_cast<size_t>(hp.n_layer));
  for (int64_t i = 0; i < hp.n_layer; ++i) {
    Layer& l = m.layers[static_cast<size_t>(i)];
    l.attn_norm = load_vector(src, blk(i, "attn_norm.weight"), hp.n_embd);
    l.attn_q_norm = load_vector(src, blk(i, "attn_q_norm.weight"), hp.head_dim, qk_norm);
    l.attn_k_norm = load_vector(src, blk(i, "attn_k_norm.weight"), hp.head_dim, qk_norm);
    l.wq = load_weight(src, blk(i, "attn_q.weight"), hp.n_embd, n_q);
    l.wk = load_weight(src, blk(i, "attn_k.weight"), hp.n_embd, n_kv);
    l.wv = load_weight(src, blk(i, "attn_v.weight"), hp.n_embd, n_kv);
    l.wo = load_weight(src, blk(i, "attn_output.weight"), n_q, hp.n_embd);
    l.wq.bias = load_vector(src, blk(i, "attn_q.bias"), n_q, false);
    l.wk.bias = load_vector(src, blk(i, "attn_k.bias"), n_kv, false);
    l.wv.bias = load_vector(src, blk(i, "attn_v.bias"), n_kv, false);
    l.wo.bias = load_vector(src, blk(i, "attn_output.bias"), hp.n_embd, false);
    l.attn_post_norm = load_vector(src, blk(i, "post_attention_norm.weight"), hp.n_embd, gemma);
    l.ffn_norm = load_vector(src, blk(i, "ffn_norm.weight"), hp.n_embd);
    l.ffn_gate = load_weight(src, blk(i, "ffn_gate.weight"), hp.n_embd, hp.n_ff);
    l.ffn_up = load_weight(src, blk(i, "ffn_up.weight"), hp.n_embd, hp.n_ff);
    l.ffn_down = load_weight(src, blk(i, "ffn_down.weight"), hp.n_ff, hp.n_embd);
    l.ffn_gate.bias = load_vector(src, blk(i, "ffn_gate.bias"), hp.n_ff, false);
    l.ffn_up.bias = load_vector(src, blk(i, "ffn_up.bias"), hp.n_ff, false);
    l.ffn_down.bias = load_vector(src, blk(i, "ffn_down.bias"), hp.n_embd, false);
    l.ffn_post_norm = load_vector(src, blk(i, "post_ffw_norm.weight"), hp.n_embd, gemma);
  }
  return m;
}

KVCache make_kv_cache(const Model& model, int64_t n_ctx, const KVCacheConfig& config) {
  if (n_ctx <= 0 || n_ctx > model.hp.n_ctx_train)
    throw InputError("context size", std::nullopt,
                     std::to_string(n_ctx) + " tokens; the model was trained on at most " +
                         std::to_string(model.hp.n_ctx_train) + " (" + arch_gguf_name(model.hp.arch).data() +
                         ".context_length), and longer contexts are not supported");
  if (!config.layers.empty() && static_cast<int64_t>(config.layers.size()) != model.hp.n_layer)
    throw std::invalid_argument("make_kv_cache: one type per layer expected");
  KVCache c;
  c.n_ctx = n_ctx;
  for (int64_t i = 0; i < model.hp.n_layer; ++i)
    c.layers.emplace_back(n_ctx, model.hp.n_head_kv, model.hp.head_dim,
                          config.layers.empty() ? LayerKVTypes{} : config.layers[static_cast<size_t>(i)],
                          config.hadamard, i, config.turbo_f16);
  return c;
}

KVCache make_kv_cache(const Model& model, int64_t n_ctx, std::span<const KVType> types) {
  KVCacheConfig config;
  for (KVType t : types) config.layers.push_back({t, t});
  return make_kv_cache(model, n_ctx, config);
}

namespace {

// Every weight product of a pass goes through here: the observer sees the input, a swapped
// weight is multiplied in place of the model's, and each sequence's low-rank deltas of the
// weight are added on that sequence's rows.
struct Matmul {
  const MatmulObserver* observer = nullptr;
  WeightSwap swap;
  std::vector<LowRankDeltas> deltas;  // [sequences] each one's adapters, or empty: none at all
  std::vector<int64_t> rows;          // [sequences] rows each sequence has in the next products

  void operator()(const Weight& w, const float* x, int64_t n_tokens, float* y) const {
    const Weight& use = &w == swap.original ? *swap.replacement : w;
    if (observer && *observer) (*observer)(use, x, n_tokens);
    matmul(use, x, n_tokens, y);
    int64_t r0 = 0;  // the sequence's first row
    for (size_t i = 0; i < deltas.size(); ++i) {
      for (const LowRankDelta& d : deltas[i])
        if (d.target == &w) add_low_rank(d, x + r0 * w.n_in, rows[i], y + r0 * w.n_out);
      r0 += rows[i];
    }
  }
};

// Buffers of one pass over n tokens.
struct Scratch {
  std::vector<float> cur;     // [n, n_embd] normed input
  std::vector<float> q;       // [n, n_head, head_dim]
  std::vector<float> k, v;    // [n, n_head_kv, head_dim]
  std::vector<float> attn;    // [n, n_head, head_dim]
  std::vector<float> proj;    // [n, n_embd]
  std::vector<float> gate, up;  // [n, n_ff]

  Scratch(const HParams& hp, int64_t n)
      : cur(static_cast<size_t>(n * hp.n_embd)),
        q(static_cast<size_t>(n * hp.n_head * hp.head_dim)),
        k(static_cast<size_t>(n * hp.n_head_kv * hp.head_dim)),
        v(k.size()),
        attn(q.size()),
        proj(cur.size()),
        gate(static_cast<size_t>(n * hp.n_ff)),
        up(gate.size()) {}
};

void check_tokens(const HParams& hp, std::span<const int32_t> tokens) {
  if (tokens.empty()) throw InputError("forward", std::nullopt, "no tokens to evaluate");
  for (int32_t t : tokens)
    if (t < 0 || t >= hp.n_vocab)
      throw InputError("forward", std::nullopt,
                       "token id " + std::to_string(t) + " is outside the vocabulary of " +
                           std::to_string(hp.n_vocab));
}

// x: [n, n_embd] the rows of `tokens` in `table` (the model's token_embd or its replacement),
// scaled by hp.embd_scale.
void embed(const HParams& hp, const Weight& table, std::span<const int32_t> tokens, float* x) {
  get_rows(table, tokens, x);
  if (hp.embd_scale != 1.0f)
    for (size_t i = 0; i < tokens.size() * static_cast<size_t>(hp.n_embd); ++i) x[i] *= hp.embd_scale;
}

// One sequence's rows of a batch: `len` tokens at positions pos0 .. pos0+len-1, whose keys and
// values go to `kv` after the positions 0 .. pos0-1 it holds already.
struct SequenceRows {
  LayerKVCache* kv = nullptr;
  int64_t pos0 = 0;
  int64_t len = 0;
};

// True for two or more sequences of fewer than kAttentionGemmTokens rows each, every one in a
// cache of its own: their attention can run one sequence per thread.
bool decode_steps_only(std::span<const SequenceRows> seqs) {
  if (seqs.size() < 2) return false;
  for (size_t i = 0; i < seqs.size(); ++i) {
    if (seqs[i].len >= kAttentionGemmTokens) return false;
    for (size_t j = 0; j < i; ++j)
      if (seqs[j].kv == seqs[i].kv) return false;
  }
  return true;
}

// Block il on the residual stream x [n, n_embd], in place. x holds the sequences of `seqs` one
// after another (their len add up to n): the matmuls see them as one batch (each weight row read
// once for all of them), positions, caches and attention are each sequence's own. Sequences
// may share one kv when they run in turn from position 0 (capture_block_inputs).
void run_block(const Model& model, int64_t il, float* x, int64_t n, std::span<const SequenceRows> seqs,
               const Matmul& mm, Scratch& s) {
  const HParams& hp = model.hp;
  const Layer& L = model.layers[static_cast<size_t>(il)];
  const int64_t E = hp.n_embd, D = hp.head_dim;
  const int64_t n_q = hp.n_head * D, n_kv = hp.n_head_kv * D;
  const bool swa = hp.swa_layers[static_cast<size_t>(il)];
  const float base = swa ? hp.rope_freq_base_swa : hp.rope_freq_base;
  const float scale = swa ? 1.0f : hp.rope_freq_scale;
  const float* freq_factors = model.rope_freqs.empty() ? nullptr : model.rope_freqs.data();

  // attention
  rms_norm(x, L.attn_norm.data(), n, E, hp.rms_eps, s.cur.data());
  mm(L.wq, s.cur.data(), n, s.q.data());
  mm(L.wk, s.cur.data(), n, s.k.data());
  mm(L.wv, s.cur.data(), n, s.v.data());
  if (!L.attn_q_norm.empty()) rms_norm(s.q.data(), L.attn_q_norm.data(), n * hp.n_head, D, hp.rms_eps, s.q.data());
  if (!L.attn_k_norm.empty())
    rms_norm(s.k.data(), L.attn_k_norm.data(), n * hp.n_head_kv, D, hp.rms_eps, s.k.data());
  // Every sequence's cache rotates alike (one configuration per layer across slots).
  const LayerKVCache& kv0 = *seqs.front().kv;
  for (int64_t t = 0, sq = 0, in_seq = 0; t < n; ++t, ++in_seq) {
    if (in_seq == seqs[static_cast<size_t>(sq)].len) ++sq, in_seq = 0;
    const int64_t pos = seqs[static_cast<size_t>(sq)].pos0 + in_seq;
    rope(hp.rope_type, s.q.data() + t * n_q, hp.n_head, D, hp.n_rot, pos, base, scale, freq_factors);
    rope(hp.rope_type, s.k.data() + t * n_kv, hp.n_head_kv, D, hp.n_rot, pos, base, scale, freq_factors);
  }
  if (const int64_t w = kv0.k_rotation()) {
    hadamard_transform(s.q.data(), n * n_q, w);
    hadamard_transform(s.k.data(), n * n_kv, w);
  }
  if (const int64_t w = kv0.v_rotation()) hadamard_transform(s.v.data(), n * n_kv, w);
  const int64_t window = swa ? hp.n_swa : 0;
  std::vector<int64_t> first_row(seqs.size());  // each sequence's first row in the batch
  for (size_t i = 1; i < seqs.size(); ++i) first_row[i] = first_row[i - 1] + seqs[i - 1].len;
  const auto attend = [&](const SequenceRows& seq, int64_t t0) {
    LayerKVCache& kv = *seq.kv;
    const int64_t pos0 = seq.pos0, len = seq.len;
    float* q = s.q.data() + t0 * n_q;
    float* out = s.attn.data() + t0 * n_q;
    kv.store(pos0, len, s.k.data() + t0 * n_kv, s.v.data() + t0 * n_kv, q, hp.n_head);
    if (kv.has_turbo())
      causal_attention_turbo(q, kv, len, pos0, hp.n_head, hp.attn_scale, window, out);
    else if (kv.has_blocks())
      causal_attention_cached(q, kv, len, pos0, hp.n_head, hp.attn_scale, window, out);
    else
      causal_attention(q, kv.keys(pos0 + len), kv.values(pos0 + len), len, pos0, hp.n_head, hp.n_head_kv, D,
                       hp.attn_scale, window, out);
  };
  // Decode steps of several sequences: one sequence per thread (each one's attention alone is
  // too small to split, and would run on one thread while the others wait). The attention
  // functions' own parallel regions are nested inside and run on their caller's thread.
  if (decode_steps_only(seqs)) {
    std::exception_ptr error;  // an exception may not leave a parallel region
#pragma omp parallel for num_threads(num_threads()) schedule(dynamic)
    for (size_t i = 0; i < seqs.size(); ++i) {
      try {
        attend(seqs[i], first_row[i]);
      } catch (...) {
#pragma omp critical(optiq_attention_error)
        if (!error) error = std::current_exception();
      }
    }
    if (error) std::rethrow_exception(error);
  } else {
    for (size_t i = 0; i < seqs.size(); ++i) attend(seqs[i], first_row[i]);
  }
  if (const int64_t w = kv0.v_rotation()) hadamard_transform(s.attn.data(), n * n_q, w);
  mm(L.wo, s.attn.data(), n, s.proj.data());
  if (!L.attn_post_norm.empty())
    rms_norm(s.proj.data(), L.attn_post_norm.data(), n, E, hp.rms_eps, s.proj.data());
  for (int64_t i = 0; i < n * E; ++i) x[i] += s.proj[i];

  // feed-forward
  rms_norm(x, L.ffn_norm.data(), n, E, hp.rms_eps, s.cur.data());
  mm(L.ffn_gate, s.cur.data(), n, s.gate.data());
  mm(L.ffn_up, s.cur.data(), n, s.up.data());
  if (hp.ffn_act == FfnActivation::SiLU)
    swiglu(s.gate.data(), s.up.data(), n * hp.n_ff);
  else
    geglu(s.gate.data(), s.up.data(), n * hp.n_ff);
  mm(L.ffn_down, s.gate.data(), n, s.proj.data());
  if (!L.ffn_post_norm.empty())
    rms_norm(s.proj.data(), L.ffn_post_norm.data(), n, E, hp.rms_eps, s.proj.data());
  for (int64_t i = 0; i < n * E; ++i) x[i] += s.proj[i];
}

// Final norm and vocabulary projection of n rows of the residual stream x [n, n_embd].
// normed: scratch [n, n_embd]; logits: [n, n_vocab].
void run_head(const Model& model, const float* x, int64_t n, const Matmul& mm, float* normed, float* logits) {
  const HParams& hp = model.hp;
  rms_norm(x, model.output_norm.data(), n, hp.n_embd, hp.rms_eps, normed);
  mm(model.head(), normed, n, logits);
  if (hp.logit_softcap > 0.0f)
    for (int64_t i = 0; i < n * hp.n_vocab; ++i)
      logits[i] = std::tanh(logits[i] / hp.logit_softcap) * hp.logit_softcap;
}

// Sequences in one pass: tokens[i] at positions caches[i]->n_past onwards, laid end to end in
// the batch. Checks them (InputError for a token outside the vocabulary or a sequence that does
// not fit its cache; std::invalid_argument for mismatched spans or a cache given twice), runs
// every block and advances each cache's n_past; returns the residual stream [n, n_embd] after
// the last block, n being all sequences' tokens. `s` is sized for n.
std::vector<float> run_sequences(const Model& model, std::span<KVCache* const> caches,
                                 std::span<const std::span<const int32_t>> tokens, const Matmul& mm, Scratch& s) {
  const HParams& hp = model.hp;
  if (caches.empty() || caches.size() != tokens.size())
    throw std::invalid_argument("forward_batch: one token list per cache expected");
  std::vector<int32_t> all;  // [n] every sequence's tokens, one sequence after another
  for (size_t i = 0; i < caches.size(); ++i) {
    check_tokens(hp, tokens[i]);
    for (size_t j = 0; j < i; ++j)
      if (caches[j] == caches[i]) throw std::invalid_argument("forward_batch: a cache appears twice in one batch");
    const int64_t end = caches[i]->n_past + static_cast<int64_t>(tokens[i].size());
    if (end > caches[i]->n_ctx)
      throw InputError("forward", std::nullopt,
                       std::to_string(end) + " tokens do not fit in the context of " + std::to_string(caches[i]->n_ctx));
    all.insert(all.end(), tokens[i].begin(), tokens[i].end());
  }
  const auto n = static_cast<int64_t>(all.size());
  std::vector<float> x(static_cast<size_t>(n * hp.n_embd));  // [n, n_embd] residual stream
  embed(hp, model.token_embd, all, x.data());
  std::vector<SequenceRows> seqs(caches.size());
  for (int64_t il = 0; il < hp.n_layer; ++il) {
    for (size_t i = 0; i < caches.size(); ++i)
      seqs[i] = {&caches[i]->layers[static_cast<size_t>(il)], caches[i]->n_past, static_cast<int64_t>(tokens[i].size())};
    run_block(model, il, x.data(), n, seqs, mm, s);
  }
  for (size_t i = 0; i < caches.size(); ++i) caches[i]->n_past += static_cast<int64_t>(tokens[i].size());
  return x;
}

}  // namespace

void forward(const Model& model, KVCache& cache, std::span<const int32_t> tokens,
             bool all_logits, float* logits, const MatmulObserver& observer) {
  const HParams& hp = model.hp;
  const int64_t n = static_cast<int64_t>(tokens.size());
  Matmul mm{&observer, {}, {}, {}};
  if (!model.deltas.empty()) mm.deltas = {model.deltas}, mm.rows = {n};
  Scratch s(hp, n);
  KVCache* const one_cache[1] = {&cache};
  const std::span<const int32_t> one_sequence[1] = {tokens};
  const std::vector<float> x = run_sequences(model, one_cache, one_sequence, mm, s);
  const int64_t first = all_logits ? 0 : n - 1;  // rows whose logits are wanted
  run_head(model, x.data() + first * hp.n_embd, n - first, mm, s.cur.data(), logits);
}

void forward_batch(const Model& model, std::span<KVCache* const> caches, std::span<const std::span<const int32_t>> tokens,
                   float* logits, std::span<const LowRankDeltas> deltas) {
  const HParams& hp = model.hp;
  if (!deltas.empty() && deltas.size() != caches.size())
    throw std::invalid_argument("forward_batch: one adapter set per sequence expected");
  Matmul mm;
  int64_t n = 0;
  for (const std::span<const int32_t> t : tokens) {
    n += static_cast<int64_t>(t.size());
    mm.rows.push_back(static_cast<int64_t>(t.size()));
  }
  if (!deltas.empty())
    mm.deltas.assign(deltas.begin(), deltas.end());
  else if (!model.deltas.empty())
    mm.deltas.assign(caches.size(), model.deltas);
  Scratch s(hp, n);
  const std::vector<float> x = run_sequences(model, caches, tokens, mm, s);
  // Each sequence's last row, gathered for one head product: [n_seq, n_embd].
  const auto n_seq = static_cast<int64_t>(caches.size());
  std::vector<float> last(static_cast<size_t>(n_seq * hp.n_embd));
  int64_t row = -1;
  for (size_t i = 0; i < tokens.size(); ++i) {
    row += static_cast<int64_t>(tokens[i].size());
    std::copy_n(x.data() + row * hp.n_embd, hp.n_embd, last.data() + static_cast<int64_t>(i) * hp.n_embd);
  }
  mm.rows.assign(caches.size(), 1);  // deltas target block weights only; the head sees one row each
  run_head(model, last.data(), n_seq, mm, s.cur.data(), logits);
}

BlockInputCache capture_block_inputs(const Model& model, std::span<const int32_t> tokens, int64_t n_seq) {
  const HParams& hp = model.hp;
  check_tokens(hp, tokens);
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n_seq < 1 || n % n_seq != 0)
    throw std::invalid_argument("capture_block_inputs: " + std::to_string(n) + " tokens are not " +
                                std::to_string(n_seq) + " sequences of equal length");
  BlockInputCache c;
  c.n_tokens = n;
  c.n_seq = n_seq;
  c.tokens.assign(tokens.begin(), tokens.end());
  c.inputs.assign(static_cast<size_t>(hp.n_layer + 1), std::vector<float>(static_cast<size_t>(n * hp.n_embd)));
  embed(hp, model.token_embd, tokens, c.inputs[0].data());
  Scratch s(hp, n);
  for (int64_t il = 0; il < hp.n_layer; ++il) {
    LayerKVCache kv(n / n_seq, hp.n_head_kv, hp.head_dim, KVType::F32);
    auto& next = c.inputs[static_cast<size_t>(il + 1)];
    next = c.inputs[static_cast<size_t>(il)];
    const std::vector<SequenceRows> seqs(static_cast<size_t>(n_seq), SequenceRows{&kv, 0, n / n_seq});
    run_block(model, il, next.data(), n, seqs, Matmul{}, s);
  }
  return c;
}

int64_t block_of(const Model& model, const Weight& w) {
  if (&w == &model.token_embd) return 0;
  if (model.output.n_out && &w == &model.output) return model.hp.n_layer;
  for (size_t il = 0; il < model.layers.size(); ++il) {
    const Layer& L = model.layers[il];
    for (const Weight* p : {&L.wq, &L.wk, &L.wv, &L.wo, &L.ffn_gate, &L.ffn_up, &L.ffn_down})
      if (p == &w) return static_cast<int64_t>(il);
  }
  throw std::invalid_argument("block_of: " + w.name + " is not a weight of this model");
}

void forward_from_block(const Model& model, const BlockInputCache& cache, int64_t first_block,
                        const WeightSwap& swap, float* logits, const KVCacheConfig& kv) {
  const HParams& hp = model.hp;
  if (first_block < 0 || first_block > hp.n_layer || cache.inputs.size() != static_cast<size_t>(hp.n_layer + 1))
    throw std::invalid_argument("forward_from_block: block index or cache does not fit the model");
  if (swap.original && (swap.replacement == nullptr || swap.replacement->n_in != swap.original->n_in ||
                        swap.replacement->n_out != swap.original->n_out))
    throw std::invalid_argument("forward_from_block: the replacement's shape differs from " + swap.original->name);
  const int64_t n = cache.n_tokens;
  const Matmul mm{nullptr, swap, {}, {}};
  Scratch s(hp, n);
  std::vector<float> x = cache.inputs[static_cast<size_t>(first_block)];
  if (first_block == 0 && swap.original == &model.token_embd) embed(hp, *swap.replacement, cache.tokens, x.data());
  if (!kv.layers.empty() && static_cast<int64_t>(kv.layers.size()) != hp.n_layer)
    throw std::invalid_argument("forward_from_block: one KV type pair per layer expected");
  for (int64_t il = first_block; il < hp.n_layer; ++il) {
    const LayerKVTypes types = kv.layers.empty() ? LayerKVTypes{} : kv.layers[static_cast<size_t>(il)];
    LayerKVCache layer_kv(n / cache.n_seq, hp.n_head_kv, hp.head_dim, types, kv.hadamard, il, kv.turbo_f16);
    const std::vector<SequenceRows> seqs(static_cast<size_t>(cache.n_seq), SequenceRows{&layer_kv, 0, n / cache.n_seq});
    run_block(model, il, x.data(), n, seqs, mm, s);
  }
  run_head(model, x.data(), n, mm, s.cur.data(), logits);
}

}  // namespace optiq::engine
