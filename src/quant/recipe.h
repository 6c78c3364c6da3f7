// llama.cpp's quantization mixes ("Q4_K_M" and friends): for every tensor of a model, the type
// llama-quantize would give it. The rules follow src/llama-quant.cpp of the llama.cpp release
// the oracle tests run (which tensors are quantized at all, the per-category bumps for attn_v,
// ffn_down, attn_output, output and token_embd, the "more bits" layer pattern, GQA / MoE / 70B /
// falcon cases, the fallback for rows that are not whole blocks, and the user overrides), so
// `optiq quantize` reproduces llama-quantize's files.
#pragma once

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "io/ggml_type.h"
#include "io/gguf.h"

namespace optiq {

// A mix by its llama_ftype number (the value written to general.file_type).
enum class QuantMix : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10, Q3_K_S = 11,
  Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17, Q6_K = 18,
  Q2_K_S = 21, IQ4_NL = 25, IQ4_XS = 30, BF16 = 32,
};

// Case-insensitive mix name as llama-quantize accepts it ("q4_k_m", the aliases Q3_K, Q4_K and
// Q5_K for the _M mixes, or the ftype number "15"); nullopt for anything else.
std::optional<QuantMix> quant_mix_from_name(std::string_view name);
std::string_view quant_mix_name(QuantMix mix);  // canonical name, e.g. "Q4_K_M"
std::string supported_quant_mixes();             // "Q2_K, Q2_K_S, ..." for messages
GgmlType quant_mix_default_type(QuantMix mix);   // the type most tensors get

// What the rules read from the model.
struct RecipeModel {
  std::string arch;       // general.architecture ("falcon" changes several rules)
  int64_t n_layer = 0;    // <arch>.block_count
  int64_t n_head = 0;     // <arch>.attention.head_count (layer 0's when per-layer)
  int64_t n_head_kv = 0;  // <arch>.attention.head_count_kv (= n_head when absent)
  int64_t n_expert = 0;   // <arch>.expert_count (0 for dense models)
  bool is_70b = false;    // llama.cpp classifies the model as LLM_TYPE_70B (attn_v gets Q5_K)

  int64_t n_gqa() const { return n_head_kv > 0 ? n_head / n_head_kv : 0; }
};

// Reads RecipeModel from GGUF metadata; throws InputError (naming `label`) when
// general.architecture or <arch>.block_count is missing.
RecipeModel recipe_model_from_metadata(const GgufMetadata& metadata, const std::string& label);

// --tensor-type PATTERN=TYPE: tensors whose name contains a match of PATTERN (ECMAScript regex,
// lower-cased as llama-quantize does) get TYPE; the first matching pattern wins.
struct TensorTypeOverride {
  std::string pattern;  // as given, lower-cased
  std::regex regex;     // compiled pattern
  GgmlType type = GgmlType::F32;
};

// Parses "PATTERN=TYPE"; throws InputError for a missing '=', an empty side, an unknown type
// or a pattern std::regex rejects.
TensorTypeOverride parse_tensor_type_override(const std::string& spec);

struct RecipeOptions {
  QuantMix mix = QuantMix::Q8_0;
  std::vector<TensorTypeOverride> tensor_types;  // --tensor-type, in order
  std::optional<GgmlType> output_tensor_type;    // --output-tensor-type
  std::optional<GgmlType> token_embedding_type;  // --token-embedding-type
  bool pure = false;         // --pure: no per-category rules, the mix's type everywhere
  bool has_imatrix = false;  // some rules (IQ4_*, Q4_0/Q5_0 ffn_down) differ with an imatrix
};

struct RecipeTensor {
  std::string name;             // GGUF name
  std::vector<uint64_t> shape;  // ggml order: shape[0] = row length
  GgmlType type = GgmlType::F32;  // stored type
};

struct TensorChoice {
  GgmlType type = GgmlType::F32;  // type to write (the stored type when not quantized)
  bool quantizable = false;       // llama.cpp quantizes this kind of tensor at all
  bool fell_back = false;         // row length did not fit the chosen type; a fallback was taken
  bool requires_imatrix = false;  // the chosen type is unusable without an importance matrix
};

// Whether llama-quantize quantizes this tensor at all, whatever the mix: not vectors, norms,
// MoE routers, positional and token-type embeddings, or small special-purpose matrices.
bool allows_quantization(const RecipeTensor& t);

// `type`, or when t's row length is not a whole number of its blocks, the type llama.cpp falls
// back to (the nearest type with smaller blocks, else F16; fell_back is then set). Throws
// InputError when a type with blocks over 32 has no fallback defined.
GgmlType fit_row(GgmlType type, const RecipeTensor& t, bool& fell_back);

// llama.cpp's processing order: tensors sorted by layer number (non-layer tensors first), then
// by name. The counters behind the layer rules advance in this order, and llama-quantize
// writes its output in it.
void sort_like_llama_cpp(std::vector<RecipeTensor>& tensors);

// Types for `tensors`, which must already be in llama.cpp's order. Throws InputError when a
// MoE tensor name carries no valid layer number, or a user-chosen type does not fit a row.
std::vector<TensorChoice> plan_tensor_types(const RecipeModel& model, const RecipeOptions& options,
                                            const std::vector<RecipeTensor>& tensors);

}  // namespace optiq
