#include "engine/model.h"

#include <cmath>

#include "engine/ops.h"
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

}  // namespace

Model load_model(const ModelSource& src) {
  const std::string arch = src.architecture();
  if (arch != "llama")
    throw InputError(src.path, std::nullopt,
                     "generation supports the llama architecture only so far, this model is \"" +
                         arch + "\"");
  Model m;
  HParams& hp = m.hp;
  hp.n_embd = need_int(src, "llama.embedding_length");
  hp.n_layer = need_int(src, "llama.block_count");
  hp.n_ff = need_int(src, "llama.feed_forward_length");
  hp.n_head = need_int(src, "llama.attention.head_count");
  hp.n_head_kv = opt_int(src, "llama.attention.head_count_kv", hp.n_head);
  if (hp.n_head % hp.n_head_kv != 0)
    throw InputError(src.path, std::nullopt, "llama.attention.head_count (" + std::to_string(hp.n_head) +
                                                 ") is not a multiple of head_count_kv (" +
                                                 std::to_string(hp.n_head_kv) + ")");
  hp.head_dim = opt_int(src, "llama.attention.key_length", hp.n_embd / hp.n_head);
  if (opt_int(src, "llama.attention.value_length", hp.head_dim) != hp.head_dim)
    throw InputError(src.path, std::nullopt, "llama.attention.value_length differs from key_length");
  hp.n_rot = opt_int(src, "llama.rope.dimension_count", hp.head_dim);
  if (hp.n_rot != hp.head_dim)  // llama.cpp asserts the same for this architecture
    throw InputError(src.path, std::nullopt, "llama.rope.dimension_count (" + std::to_string(hp.n_rot) +
                                                 ") differs from the head width (" +
                                                 std::to_string(hp.head_dim) + ")");
  hp.n_ctx_train = opt_int(src, "llama.context_length", 2048);
  if (auto eps = src.metadata.get_double("llama.attention.layer_norm_rms_epsilon"))
    hp.rms_eps = static_cast<float>(*eps);
  if (auto base = src.metadata.get_double("llama.rope.freq_base")) hp.rope_freq_base = static_cast<float>(*base);
  const std::string scaling = src.metadata.get_string("llama.rope.scaling.type").value_or("none");
  if (scaling == "linear") {
    const double factor = src.metadata.get_double("llama.rope.scaling.factor").value_or(1.0);
    if (!(factor > 0)) throw InputError(src.path, std::nullopt, "llama.rope.scaling.factor must be positive");
    hp.rope_freq_scale = static_cast<float>(1.0 / factor);
  } else if (scaling != "none") {
    throw InputError(src.path, std::nullopt, "rope scaling \"" + scaling + "\" is not supported yet");
  }
  if (auto fs = src.metadata.get_double("llama.rope.scaling.factor"); fs && scaling == "none" && *fs != 1.0)
    throw InputError(src.path, std::nullopt, "llama.rope.scaling.factor without a scaling type");

  const SourceTensor* embd = src.find("token_embd.weight");
  if (!embd || embd->shape.size() != 2 || embd->shape[0] != static_cast<uint64_t>(hp.n_embd))
    throw InputError(src.path, std::nullopt, "token_embd.weight is missing or not [n_embd, n_vocab]");
  hp.n_vocab = static_cast<int64_t>(embd->shape[1]);
  m.token_embd = load_weight(src, "token_embd.weight", hp.n_embd, hp.n_vocab);
  m.output_norm = load_vector(src, "output_norm.weight", hp.n_embd);
  m.output = load_weight(src, "output.weight", hp.n_embd, hp.n_vocab, /*required=*/false);
  if (m.output.n_out == 0) m.output = m.token_embd;  // tied embeddings
  m.rope_freqs = load_vector(src, "rope_freqs.weight", hp.n_rot / 2, /*required=*/false);

  const int64_t n_q = hp.n_head * hp.head_dim, n_kv = hp.n_head_kv * hp.head_dim;
  m.layers.resize(static_cast<size_t>(hp.n_layer));
  for (int64_t i = 0; i < hp.n_layer; ++i) {
    Layer& l = m.layers[static_cast<size_t>(i)];
    l.attn_norm = load_vector(src, blk(i, "attn_norm.weight"), hp.n_embd);
    l.wq = load_weight(src, blk(i, "attn_q.weight"), hp.n_embd, n_q);
    l.wk = load_weight(src, blk(i, "attn_k.weight"), hp.n_embd, n_kv);
    l.wv = load_weight(src, blk(i, "attn_v.weight"), hp.n_embd, n_kv);
    l.wo = load_weight(src, blk(i, "attn_output.weight"), n_q, hp.n_embd);
    l.wq.bias = load_vector(src, blk(i, "attn_q.bias"), n_q, false);
    l.wk.bias = load_vector(src, blk(i, "attn_k.bias"), n_kv, false);
    l.wv.bias = load_vector(src, blk(i, "attn_v.bias"), n_kv, false);
    l.wo.bias = load_vector(src, blk(i, "attn_output.bias"), hp.n_embd, false);
    l.ffn_norm = load_vector(src, blk(i, "ffn_norm.weight"), hp.n_embd);
    l.ffn_gate = load_weight(src, blk(i, "ffn_gate.weight"), hp.n_embd, hp.n_ff);
    l.ffn_up = load_weight(src, blk(i, "ffn_up.weight"), hp.n_embd, hp.n_ff);
    l.ffn_down = load_weight(src, blk(i, "ffn_down.weight"), hp.n_ff, hp.n_embd);
    l.ffn_gate.bias = load_vector(src, blk(i, "ffn_gate.bias"), hp.n_ff, false);
    l.ffn_up.bias = load_vector(src, blk(i, "ffn_up.bias"), hp.n_ff, false);
    l.ffn_down.bias = load_vector(src, blk(i, "ffn_down.bias"), hp.n_embd, false);
  }
  return m;
}

KVCache make_kv_cache(const Model& model, int64_t n_ctx) {
  KVCache c;
  c.n_ctx = n_ctx;
  for (int64_t i = 0; i < model.hp.n_layer; ++i)
    c.layers.emplace_back(n_ctx, model.hp.n_head_kv, model.hp.head_dim);
  return c;
}

void forward(const Model& model, KVCache& cache, std::span<const int32_t> tokens,
             bool all_logits, float* logits, const MatmulObserver& observer) {
  const HParams& hp = model.hp;
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t pos0 = cache.n_past;
  if (n == 0) throw InputError("forward", std::nullopt, "no tokens to evaluate");
  if (pos0 + n > cache.n_ctx)
    throw InputError("forward", std::nullopt,
                     std::to_string(pos0 + n) + " tokens do not fit in the context of " +
                         std::to_string(cache.n_ctx));
  for (int32_t t : tokens)
    if (t < 0 || t >= hp.n_vocab)
      throw InputError("forward", std::nullopt,
                       "token id " + std::to_string(t) + " is outside the vocabulary of " +
                           std::to_string(hp.n_vocab));

  const int64_t E = hp.n_embd, D = hp.head_dim;
  const int64_t n_q = hp.n_head * D, n_kv = hp.n_head_kv * D;
  std::vector<float> x(static_cast<size_t>(n * E));       // [n, n_embd] residual stream
  std::vector<float> cur(static_cast<size_t>(n * E));     // [n, n_embd] normed input
  std::vector<float> q(static_cast<size_t>(n * n_q));     // [n, n_head, head_dim]
  std::vector<float> k(static_cast<size_t>(n * n_kv));    // [n, n_head_kv, head_dim]
  std::vector<float> v(static_cast<size_t>(n * n_kv));    // [n, n_head_kv, head_dim]
  std::vector<float> attn(static_cast<size_t>(n * n_q));  // [n, n_head, head_dim]
  std::vector<float> proj(static_cast<size_t>(n * E));    // [n, n_embd]
  std::vector<float> gate(static_cast<size_t>(n * hp.n_ff)), up(static_cast<size_t>(n * hp.n_ff));  // [n, n_ff]
  std::vector<float> scores(static_cast<size_t>(pos0 + n));  // [positions visible]
  const float kq_scale = 1.0f / std::sqrt(static_cast<float>(D));
  const float* freq_factors = model.rope_freqs.empty() ? nullptr : model.rope_freqs.data();

  auto mm = [&](const Weight& w, const float* in, int64_t n_rows, float* out) {
    if (observer) observer(w, in, n_rows);
    matmul(w, in, n_rows, out);
  };

  get_rows(model.token_embd, tokens, x.data());

  for (int64_t il = 0; il < hp.n_layer; ++il) {
    const Layer& L = model.layers[static_cast<size_t>(il)];
    LayerKVCache& kv = cache.layers[static_cast<size_t>(il)];
    // attention block
    rms_norm(x.data(), L.attn_norm.data(), n, E, hp.rms_eps, cur.data());
    mm(L.wq, cur.data(), n, q.data());
    mm(L.wk, cur.data(), n, k.data());
    mm(L.wv, cur.data(), n, v.data());
    for (int64_t t = 0; t < n; ++t) {
      rope_norm(q.data() + t * n_q, hp.n_head, D, hp.n_rot, pos0 + t, hp.rope_freq_base,
                hp.rope_freq_scale, freq_factors);
      rope_norm(k.data() + t * n_kv, hp.n_head_kv, D, hp.n_rot, pos0 + t, hp.rope_freq_base,
                hp.rope_freq_scale, freq_factors);
      std::copy(k.begin() + t * n_kv, k.begin() + (t + 1) * n_kv, kv.k_row(pos0 + t));
      std::copy(v.begin() + t * n_kv, v.begin() + (t + 1) * n_kv, kv.v_row(pos0 + t));
    }
    causal_attention(q.data(), kv.k.data(), kv.v.data(), n, pos0, hp.n_head, hp.n_head_kv, D,
                     kq_scale, scores.data(), attn.data());
    mm(L.wo, attn.data(), n, proj.data());
    for (int64_t i = 0; i < n * E; ++i) x[i] += proj[i];
    // feed-forward block
    rms_norm(x.data(), L.ffn_norm.data(), n, E, hp.rms_eps, cur.data());
    mm(L.ffn_gate, cur.data(), n, gate.data());
    mm(L.ffn_up, cur.data(), n, up.data());
    swiglu(gate.data(), up.data(), n * hp.n_ff);
    mm(L.ffn_down, gate.data(), n, proj.data());
    for (int64_t i = 0; i < n * E; ++i) x[i] += proj[i];
  }
  cache.n_past = pos0 + n;

  const int64_t first = all_logits ? 0 : n - 1;  // rows whose logits are wanted
  const int64_t n_out = n - first;
  rms_norm(x.data() + first * E, model.output_norm.data(), n_out, E, hp.rms_eps, cur.data());
  mm(model.output, cur.data(), n_out, logits);
}

}  // namespace optiq::engine
