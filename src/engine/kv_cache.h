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
//
// TurboQuant keys also take a per-channel offset and scales from the first `key_stats`
// positions (LayerKVCache::k_offset), which are held in f16 until they have all arrived and read
// from f16 by the queries among them. On SmolLM2, 128 positions serve about as well as a whole
// 2048-token chunk, and 64 measurably worse (docs/results.md).
struct TurboF16Rows {
  int64_t sink = 1;         // first positions kept in f16
  int64_t recent = 64;      // newest positions (per query) kept in f16
  int64_t key_stats = 128;  // first positions the key statistics come from; 0: none
  bool operator==(const TurboF16Rows&) const = default;
};

// Bytes a TurboQuant side (keys when `keys`) holds whatever the context, beside its codes: its
// sink + recent f16 rows (at most n_ctx of them) and, for keys, the offset and scales; 0 for a
// type that is not TurboQuant. row_width: n_head_kv * head_dim.
size_t kv_turbo_fixed_bytes(KVType t, bool keys, int64_t row_width, const TurboF16Rows& rows, int64_t n_ctx);

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
  // TurboQuant keys are stored as a * (k - m) per head, channel by channel: m the mean key and a
  // per-channel scales (both [n_head_kv, head_dim]), taken from the first S =
  // min(turbo_f16().key_stats, n_ctx) positions whatever the batches. Until those have all
  // arrived they are held in f16 and have no key codes; then their codes are written, once. The
  // queries among them (positions below S) read every position from the held f16 rows, so a
  // result does not depend on how a context was split into batches. Queries are scored against
  // the codes as (q / a) . (a * (k - m)) + q . m, which is q . k. Why (README, "TurboQuant KV
  // types"):
  //   m: the component all keys share (large in real models) would otherwise take most of the
  //      quantizer's error;
  //   a = (rms of the queries' channel / rms of the centered keys' channel)^(1/4), geometric
  //      mean 1 per head: the rotation spreads the quantization error evenly over the channels
  //      of a * (k - m), so dividing the query by a moves it off the channels queries weigh
  //      most. a is 1 when store() was not given the queries.
  const std::vector<float>& k_offset() const { return k_offset_; }  // m, zeros until set
  const std::vector<float>& k_scale() const { return k_scale_; }    // a, ones until set
  // The statistics still wait for positions: those stored so far have no key codes yet.
  bool key_stats_pending() const { return stats_pending_; }
  // Width of the Walsh-Hadamard chunks queries/keys (values/output) are rotated in; 0: none.
  int64_t k_rotation() const { return k_rotation_; }
  int64_t v_rotation() const { return v_rotation_; }
  // Bytes of K (V) storage for all n_ctx positions, with a TurboQuant side's sink + recent f16
  // rows and (K) key statistics. Transient f16 copies are not counted, like a batch's
  // activations: a batch being stored briefly holds all its rows in f16, and the key
  // statistics' positions are held until a later position is stored.
  size_t k_bytes() const { return k_.size() + kv_turbo_fixed_bytes(types_.k, true, row_width(), f16_, n_ctx_); }
  size_t v_bytes() const { return v_.size() + kv_turbo_fixed_bytes(types_.v, false, row_width(), f16_, n_ctx_); }

  // The f16 rows beside TurboQuant codes (TurboF16Rows). For a query at position `last` that
  // sees positions first..last, codes_span gives the span [lo, hi] read from codes (empty when
  // lo > hi, as for a query among the held key statistics' positions); every other visible
  // position has f16 rows (k_f16_row/v_f16_row not null on a TurboQuant side). Without a
  // TurboQuant side the span is first..last.
  struct Span {
    int64_t lo, hi;
  };
  Span codes_span(int64_t first, int64_t last) const;
  // Position pos as f16 [n_head_kv, head_dim] (keys as they arrived: no offset, no scales), or
  // null where it is not kept.
  const uint16_t* k_f16_row(int64_t pos) const { return f16_row(k_recent_, k_sink_, k_held_, pos); }
  const uint16_t* v_f16_row(int64_t pos) const { return f16_row(v_recent_, v_sink_, v_held_, pos); }
  const TurboF16Rows& turbo_f16() const { return f16_; }
  // The most positions one query reads from f16 rows: its sink and newest ones, or while the
  // key statistics' positions are held, all of those.
  int64_t max_f16_positions() const { return std::max(f16_.sink + f16_.recent, stat_positions()); }

  // Stores n positions from `pos` on: k, v are [n, n_head_kv, head_dim] f32 (already rotated
  // when k_rotation()/v_rotation() say so); q, when given, the same positions' queries
  // [n, n_head, head_dim] for the key scales (k_scale), n_head a multiple of n_head_kv.
  void store(int64_t pos, int64_t n, const float* k, const float* v, const float* q = nullptr, int64_t n_head = 0);
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
  // TurboQuant key statistics ([n_head_kv, head_dim] each; empty when K is not TurboQuant)
  std::vector<float> k_offset_;  // m, subtracted from keys before quantizing
  std::vector<float> k_scale_;   // a, multiplied into centered keys before quantizing
  bool stats_pending_ = false;   // positions [0, stat_positions()) not all stored yet
  bool stats_queries_ = true;    // every held position came with its queries
  // Held from a store at position 0 until the first store at or past stat_positions(): those
  // positions as f16 rows [S, n_head_kv, head_dim] of each TurboQuant side, and per position the
  // sum over each KV head's query heads of q^2 [S, n_head_kv, head_dim].
  bool held_ = false;
  std::vector<uint16_t> k_held_, v_held_;
  std::vector<float> q_sq_held_;
  TurboF16Rows f16_;
  // f16 rows of TurboQuant sides (empty otherwise): positions [recent_first_, recent_end_) as
  // [n, n_head_kv, head_dim], and positions [0, min(sink, stored)) likewise.
  std::vector<uint16_t> k_recent_, v_recent_, k_sink_, v_sink_;
  int64_t recent_first_ = 0, recent_end_ = 0;

  const uint16_t* f16_row(const std::vector<uint16_t>& recent, const std::vector<uint16_t>& sink,
                          const std::vector<uint16_t>& held, int64_t pos) const;
  void keep_f16_rows(int64_t pos, int64_t n, const float* k, const float* v);
  int64_t stat_positions() const { return std::min(f16_.key_stats, n_ctx_); }
  // Holds positions [pos, pos + n) below stat_positions() in the held rows.
  void hold(int64_t pos, int64_t n, const float* k, const float* v, const float* q, int64_t n_head);
  // m and a from the held rows, then the key codes of positions [0, stat_positions()).
  void finish_key_stats();
  // Key codes of n positions from pos, from f32 keys [n, n_head_kv, head_dim].
  void store_key_codes(int64_t pos, int64_t n, const float* k);
};

struct KVCache {
  std::vector<LayerKVCache> layers;  // [n_layer]
  int64_t n_ctx = 0;                 // capacity in positions (the same in every layer)
  int64_t n_past = 0;                // positions filled: the next token goes to position n_past

  void clear() { n_past = 0; }
  // Whether positions can be dropped from the end (speculative decoding's rejected drafts):
  // every layer but TurboQuant ones, whose recent f16 rows and key statistics follow the
  // positions stored so far.
  bool rolls_back() const;
  // Forgets positions n .. n_past-1 (later stores overwrite them). Throws std::logic_error
  // when !rolls_back() or n is outside 0..n_past.
  void roll_back(int64_t n);
  // Bytes of all layers' K and V storage.
  size_t bytes() const;
};

}  // namespace optiq::engine
