// The key/value cache of causal attention: each layer's rotated keys and values of every
// position seen so far. Keys and values get their storage type independently per layer, so a
// layer whose attention is robust can keep its cache in a smaller type than one that is not.
//
// Block types (Q8_0 ... IQ4_NL) are laid out as llama.cpp lays out its cache tensors: one row
// per position holding all n_head_kv heads, quantized as it arrives with the row quantizer
// ggml's CPU backend uses for that type (ggml_set_rows -> from_float); a head is a run of whole
// blocks inside the row, so head_dim must be a multiple of the block (32), as llama.cpp
// requires. Nothing stored is ever requantized.
//
// TurboQuant types (TQ2 ... TQ4, kv/turboquant.h) store one TurboQuant row per (position, KV
// head): the head's norm and the Lloyd-Max codes of its randomly rotated direction, quantized as
// it arrives. Each layer's keys and values have their own rotation (turbo_rotation_seed).
// Attention over them stays in the rotated space (attention_turbo.h).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "io/ggml_type.h"
#include "kv/turboquant.h"

namespace optiq::engine {

// F32/F16: plain floats. Q8_0 ... IQ4_NL are ggml block types with 32 values per block; bits
// per value including the block scale: Q8_0 8.5, Q5_1 6, Q5_0 5.5, Q4_1 5, Q4_0 4.5, IQ4_NL 4.5.
// TQ* are TurboQuant rows per head (kv/turboquant.h): N-bit codes (TQ2_5/TQ3_5: half the
// channels at one bit more) plus an f16 norm, so N + 16/head_dim bits per value (TQ3 at head
// width 64: 3.25, at 128: 3.125). TQ*_QJL are the unbiased inner-product variant for keys (the
// paper's TurboQuant_prod): N-1 bit codes plus the 1-bit QJL sketch of the residual and its f16
// norm, N + 32/head_dim bits per value; values cannot use them.
enum class KVType { F32, F16, Q8_0, Q5_0, Q5_1, Q4_0, Q4_1, IQ4_NL, TQ2, TQ2_5, TQ3, TQ3_5, TQ4, TQ3_QJL, TQ4_QJL };

std::string_view kv_type_name(KVType t);        // "f32", "f16", "q8_0", ..., "iq4_nl", "tq2", ..., "tq4_qjl"
KVType parse_kv_type(const std::string& name);   // throws InputError for an unknown name
std::optional<KVType> kv_type_from_name(std::string_view name);
std::string kv_type_names();                     // "f32, f16, q8_0, ..." for messages
// The ggml type of the storage; throws std::logic_error for a TurboQuant type (no ggml type).
GgmlType kv_ggml_type(KVType t);
bool kv_type_is_block(KVType t);                 // stored in ggml quantized blocks (Q8_0 ... IQ4_NL)
bool kv_type_is_turbo(KVType t);                 // stored as TurboQuant rows (TQ*)
// The TurboQuant row format of a TQ type for heads of width head_dim (kv::turbo_format).
kv::TurboFormat kv_turbo_format(KVType t, int64_t head_dim);
// Bits of storage per cached value, scales and norms included, at this head width.
double kv_bits_per_value(KVType t, int64_t head_dim);
// The rotation seed of a layer's TurboQuant keys (or values): each layer and each of K and V
// gets its own rotation.
uint64_t turbo_rotation_seed(int64_t layer, bool values);

// The storage types of one layer's keys and values.
struct LayerKVTypes {
  KVType k = KVType::F32;
  KVType v = KVType::F32;
  bool operator==(const LayerKVTypes&) const = default;
};

// Positions a TurboQuant side (K or V) also keeps as f16, beside its codes: the first `sink`
// positions, and for each query the `recent` positions nearest it (its own included). Attention
// reads those from f16 and every other visible position from codes. Rows are still quantized
// once, as they arrive; the f16 copies are a window of the newest rows plus the sink rows, so
// they add a constant (sink + recent) rows per layer whatever the context. Why: most of a
// language model's attention falls on the newest tokens and on the first one (the attention
// sink), and that is where 3-bit keys cost the most (README, "TurboQuant KV types").
struct TurboF16Rows {
  int64_t sink = 1;     // first positions kept in f16
  int64_t recent = 64;  // newest positions (per query) kept in f16
  bool operator==(const TurboF16Rows&) const = default;
};

// How a whole cache is stored.
struct KVCacheConfig {
  std::vector<LayerKVTypes> layers;  // [n_layer], or empty: F32 everywhere
  // llama.cpp's attention rotation: where a layer's K (V) is block-quantized and head_dim is a
  // multiple of 64, queries and keys (values, and the attention output back) go through an
  // orthonormal Walsh-Hadamard transform before the cache, which spreads outliers over the
  // block. On by default, as in llama.cpp (its LLAMA_ATTN_ROT_DISABLE=1 turns it off).
  bool hadamard = true;
  TurboF16Rows turbo_f16;  // f16 rows beside TurboQuant codes; {0, 0}: codes only
};

class LayerKVCache {
 public:
  LayerKVCache() = default;
  // Throws InputError when a block type does not fit head_dim (head_dim % 32 != 0), a
  // TurboQuant type does not (head_dim % 8 != 0), or values are given a QJL type. `layer`
  // seeds the TurboQuant rotations (turbo_rotation_seed).
  LayerKVCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, LayerKVTypes types, bool hadamard = true,
               int64_t layer = 0, TurboF16Rows turbo_f16 = {});
  LayerKVCache(int64_t n_ctx, int64_t n_head_kv, int64_t head_dim, KVType type)
      : LayerKVCache(n_ctx, n_head_kv, head_dim, LayerKVTypes{type, type}) {}

  int64_t n_ctx() const { return n_ctx_; }
  int64_t n_head_kv() const { return n_head_kv_; }
  int64_t head_dim() const { return head_dim_; }
  int64_t row_width() const { return n_head_kv_ * head_dim_; }  // values per position
  KVType k_type() const { return types_.k; }
  KVType v_type() const { return types_.v; }
  // Either is block-quantized: attention then reads the blocks (attention_blocks.h) instead of
  // keys()/values().
  bool has_blocks() const { return kv_type_is_block(types_.k) || kv_type_is_block(types_.v); }
  // Either is TurboQuant: attention then goes through attention_turbo.h, whatever the other is.
  bool has_turbo() const { return k_turbo_ != nullptr || v_turbo_ != nullptr; }
  // The quantizer of each head's K (V) row for a TurboQuant type, else null.
  const kv::TurboQuantizer* k_turbo() const { return k_turbo_.get(); }
  const kv::TurboQuantizer* v_turbo() const { return v_turbo_.get(); }
  // TurboQuant keys are stored minus a per-head offset m ([n_head_kv, head_dim], zeros until
  // set): the mean key of the first batch stored at position 0 when it has at least
  // kKeyOffsetMinTokens tokens. Every score of a query then moves by the same -q.m, which the
  // softmax ignores, so attention is unchanged while the quantizer no longer spends its error
  // on the component all keys share (large in real models, e.g. SmolLM2's: see README).
  static constexpr int64_t kKeyOffsetMinTokens = 16;
  const std::vector<float>& k_offset() const { return k_offset_; }
  // Width of the Walsh-Hadamard chunks queries/keys (values/output) are rotated in; 0: none.
  int64_t k_rotation() const { return k_rotation_; }
  int64_t v_rotation() const { return v_rotation_; }
  // Bytes of K (V) storage for all n_ctx positions (K: with the TurboQuant key offset), and
  // for a TurboQuant side its sink + recent f16 rows (a batch being stored briefly holds all
  // its rows in f16 too, like the batch's activations).
  size_t k_bytes() const { return k_.size() + k_offset_.size() * sizeof(float) + f16_rows_bytes(k_turbo_ != nullptr); }
  size_t v_bytes() const { return v_.size() + f16_rows_bytes(v_turbo_ != nullptr); }

  // The f16 rows beside TurboQuant codes (TurboF16Rows). For a query at position `last` that
  // sees positions first..last, codes_span gives the span [lo, hi] read from codes (empty when
  // lo > hi); every other visible position has f16 rows (k_f16_row/v_f16_row not null on a
  // TurboQuant side). Without a TurboQuant side the span is first..last.
  struct Span {
    int64_t lo, hi;
  };
  Span codes_span(int64_t first, int64_t last) const;
  // Position pos as f16 [n_head_kv, head_dim] (keys minus k_offset(), as the codes store them),
  // or null where it is not kept.
  const uint16_t* k_f16_row(int64_t pos) const { return f16_row(k_recent_, k_sink_, pos); }
  const uint16_t* v_f16_row(int64_t pos) const { return f16_row(v_recent_, v_sink_, pos); }
  const TurboF16Rows& turbo_f16() const { return f16_; }

  // Stores n positions from `pos` on: k, v are [n, n_head_kv, head_dim] f32 (already rotated
  // when k_rotation()/v_rotation() say so).
  void store(int64_t pos, int64_t n, const float* k, const float* v);
  // For F32/F16 storage only: positions [0, n) as f32 [n, n_head_kv, head_dim]: the storage
  // itself for F32, else converted into a scratch buffer (valid until the next call).
  const float* keys(int64_t n);
  const float* values(int64_t n);
  // The stored row of a position: row_bytes(K or V) bytes of kv_ggml_type blocks (or floats),
  // or for TurboQuant n_head_kv rows of k_turbo()->row_bytes() (v_turbo()) one after another.
  const uint8_t* k_row(int64_t pos) const { return k_.data() + static_cast<size_t>(pos) * k_row_bytes_; }
  const uint8_t* v_row(int64_t pos) const { return v_.data() + static_cast<size_t>(pos) * v_row_bytes_; }
  size_t k_row_bytes() const { return k_row_bytes_; }
  size_t v_row_bytes() const { return v_row_bytes_; }

 private:
  int64_t n_ctx_ = 0;      // positions the cache holds
  int64_t n_head_kv_ = 0;  // key/value heads
  int64_t head_dim_ = 0;   // width of one head
  LayerKVTypes types_;
  int64_t k_rotation_ = 0, v_rotation_ = 0;  // Hadamard chunk widths, 0 = not rotated
  size_t k_row_bytes_ = 0, v_row_bytes_ = 0;  // bytes of one position's row
  std::vector<uint8_t> k_, v_;                // [n_ctx][row bytes] storage
  std::vector<float> k_scratch_, v_scratch_;  // F16 storage converted for one attention call
  // TurboQuant quantizers (shared by copies of the cache: they never change), or null.
  std::shared_ptr<const kv::TurboQuantizer> k_turbo_, v_turbo_;
  std::vector<float> k_offset_;  // [n_head_kv, head_dim] subtracted from TurboQuant keys; else empty
  TurboF16Rows f16_;
  // f16 rows of TurboQuant sides (empty otherwise): positions [recent_first_, recent_end_) as
  // [n, n_head_kv, head_dim], and positions [0, min(sink, stored)) likewise.
  std::vector<uint16_t> k_recent_, v_recent_, k_sink_, v_sink_;
  int64_t recent_first_ = 0, recent_end_ = 0;

  const uint16_t* f16_row(const std::vector<uint16_t>& recent, const std::vector<uint16_t>& sink, int64_t pos) const;
  size_t f16_rows_bytes(bool turbo) const {
    const int64_t rows = std::min(f16_.sink + f16_.recent, n_ctx_);
    return turbo ? static_cast<size_t>(rows * row_width()) * sizeof(uint16_t) : 0;
  }
  void keep_f16_rows(int64_t pos, int64_t n, const float* k, const float* v);
};

struct KVCache {
  std::vector<LayerKVCache> layers;  // [n_layer]
  int64_t n_ctx = 0;                 // capacity in positions (the same in every layer)
  int64_t n_past = 0;                // positions filled: the next token goes to position n_past

  void clear() { n_past = 0; }
  // Bytes of all layers' K and V storage.
  size_t bytes() const;
};

// --- Choosing the types -----------------------------------------------------------------------

// The per-layer types of a kv_config.json file: {"layers": [{"k": "q8_0", "v": "q4_0"}, ...]}
// with exactly n_layer entries (each "k" and "v" a kv_type_name), or
// {"default": {"k": ..., "v": ...}, "layers": {"3": {"k": "f16"}, ...}} where the object form
// overrides single layers by index and a missing "k"/"v" keeps the default. Throws InputError
// naming the file and the field for anything else.
std::vector<LayerKVTypes> read_kv_config(const std::string& path, int64_t n_layer);

}  // namespace optiq::engine
