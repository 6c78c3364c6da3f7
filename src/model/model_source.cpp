#include "model/model_source.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>

#include "io/safetensors.h"
#include "model/hf_config.h"
#include "model/hf_tensor_names.h"
#include "model/tokenizer.h"
#include "quant/float16.h"
#include "quant/quantize.h"
#include "util/error.h"
#include "util/json_file.h"

namespace optiq {
namespace fs = std::filesystem;
using nlohmann::json;

uint64_t SourceTensor::n_elements() const {
  uint64_t n = 1;
  for (uint64_t d : shape) n *= d;
  return n;
}

const SourceTensor* ModelSource::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::string ModelSource::architecture() const {
  return metadata.get_string("general.architecture").value_or("");
}

namespace {

// The stored row that becomes row r after the transform's rope permutation.
uint64_t source_row(const SourceTensor& t, uint64_t r) {
  const uint32_t heads = t.transform.rope_permute_heads;
  if (!heads) return r;
  const uint64_t head_rows = t.n_rows() / heads;
  const uint64_t h = r / head_rows, within = r % head_rows;
  return h * head_rows + (within % 2) * (head_rows / 2) + within / 2;
}

uint64_t stored_row_bytes(const SourceTensor& t) {
  const auto& traits = ggml_traits(t.type);
  return t.row_elems() / traits.block_elems * traits.block_bytes;
}

}  // namespace

void read_rows_raw(const SourceTensor& t, uint64_t row0, uint64_t n_rows, std::byte* out) {
  const uint64_t bytes = stored_row_bytes(t);
  for (uint64_t r = row0; r < row0 + n_rows; ++r)
    std::memcpy(out + (r - row0) * bytes, t.data.data() + source_row(t, r) * bytes, bytes);
}

void read_rows_f32(const SourceTensor& t, uint64_t row0, uint64_t n_rows, float* out) {
  const uint64_t width = t.row_elems();
  for (uint64_t r = row0; r < row0 + n_rows; ++r) {
    float* dst = out + (r - row0) * width;
    const std::byte* p = t.data.data() + source_row(t, r) * stored_row_bytes(t);
    switch (t.type) {
      case GgmlType::F32: std::memcpy(dst, p, width * sizeof(float)); break;
      case GgmlType::F16: f16_to_f32_n(reinterpret_cast<const uint16_t*>(p), dst, width); break;
      case GgmlType::BF16: bf16_to_f32_n(reinterpret_cast<const uint16_t*>(p), dst, width); break;
      default:
        if (!quantize_supported(t.type))
          throw InputError(t.origin, std::nullopt,
                           "reading " + std::string(ggml_type_name(t.type)) +
                               " weights as floats is not supported yet");
        dequantize_row(t.type, p, dst, static_cast<int64_t>(width));
    }
    if (t.transform.add != 0.0f)
      for (uint64_t i = 0; i < width; ++i) dst[i] += t.transform.add;
  }
}

namespace {

ModelSource open_gguf(const fs::path& path) {
  auto file = std::make_shared<GgufFile>(path.string());
  ModelSource s;
  s.kind = SourceKind::Gguf;
  s.path = path.string();
  s.metadata = file->metadata();
  for (const auto& info : file->tensors()) {
    SourceTensor t;
    t.name = info.name;
    t.type = info.type;
    t.shape = info.shape;
    t.data = file->tensor_data(info);
    t.file_offset = file->contents().data_offset + info.offset;
    t.origin = path.string() + ":" + info.name;
    s.tensors.push_back(std::move(t));
  }
  s.storage.push_back(file);
  return s;
}

// llama.cpp's converter turns "llama3" rope scaling into per-frequency factors stored as the
// f32 tensor rope_freqs.weight [head_dim / 2].
std::vector<float> llama3_rope_factors(const json& p) {
  const json rope = hf_rope_parameters(p);
  std::string type = rope.value("rope_type", std::string());
  for (auto& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (type != "llama3") return {};
  const double base = rope.value("rope_theta", 10000.0);
  const int64_t dim = p.contains("head_dim") && p["head_dim"].is_number_integer()
                          ? p["head_dim"].get<int64_t>()
                          : p["hidden_size"].get<int64_t>() / p["num_attention_heads"].get<int64_t>();
  // The reference evaluates this on float32 tensors, and `scalar / tensor` as
  // reciprocal(tensor) * scalar; doing the same here reproduces its values to the bit.
  const float factor = static_cast<float>(rope.value("factor", 8.0));
  const double low = rope.value("low_freq_factor", 1.0);
  const double high = rope.value("high_freq_factor", 4.0);
  const double old_ctx = rope.value("original_max_position_embeddings", 8192.0);
  const double low_wavelen = old_ctx / low, high_wavelen = old_ctx / high;
  std::vector<float> factors;
  for (int64_t i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(static_cast<float>(base), static_cast<float>(i) / static_cast<float>(dim));
    const float wavelen = (1.0f / freq) * static_cast<float>(2 * M_PI);
    if (wavelen < high_wavelen) {
      factors.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      factors.push_back(factor);
    } else {
      const float smooth = ((1.0f / wavelen) * static_cast<float>(old_ctx) - static_cast<float>(low)) /
                           static_cast<float>(high - low);
      factors.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return factors;
}

GgmlType ggml_type_for(const SafetensorsTensor& t, const std::string& file) {
  switch (t.dtype) {
    case SafetensorsDtype::F32: return GgmlType::F32;
    case SafetensorsDtype::F16: return GgmlType::F16;
    case SafetensorsDtype::BF16: return GgmlType::BF16;
    default:
      throw InputError(file, std::nullopt,
                       "tensor '" + t.name + "' has dtype " + safetensors_dtype_name(t.dtype) +
                           "; only F32, F16 and BF16 weights can be converted");
  }
}

// The safetensors files of a folder: model.safetensors, or the shards an index names.
std::vector<fs::path> weight_files(const fs::path& dir) {
  const fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    const json j = read_json_file(index);
    if (!j.contains("weight_map") || !j["weight_map"].is_object())
      throw InputError(index.string(), std::nullopt, "field 'weight_map' must be an object");
    std::set<std::string> shards;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string())
        throw InputError(index.string(), std::nullopt, "weight_map['" + name + "'] is not a file name");
      const std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f == "..")
        throw InputError(index.string(), std::nullopt, "weight_map names a file outside the folder: " + f);
      shards.insert(f);
    }
    std::vector<fs::path> files;
    for (const auto& f : shards) files.push_back(dir / f);
    return files;
  }
  if (fs::exists(dir / "model.safetensors")) return {dir / "model.safetensors"};
  throw InputError(dir.string(), std::nullopt,
                   "no model.safetensors or model.safetensors.index.json in the folder");
}

ModelSource open_hf_folder(const fs::path& dir) {
  const HfConfig config = parse_hf_config((dir / "config.json").string());
  ModelSource s;
  s.kind = SourceKind::HuggingFace;
  s.path = dir.string();
  std::string name = fs::absolute(dir).lexically_normal().filename().string();
  if (name.empty()) name = fs::absolute(dir).lexically_normal().parent_path().filename().string();
  hf_config_to_gguf(config, name, s.metadata);
  // The tokenizer, when the folder carries one (tokenizer.json or vocab.json + merges.txt).
  if (config.params.contains("vocab_size") && config.params["vocab_size"].is_number_integer())
    hf_tokenizer_to_gguf(dir, config.params["vocab_size"].get<int64_t>(), s.metadata);

  const uint32_t n_head = static_cast<uint32_t>(config.n_heads());
  const uint32_t n_kv = static_cast<uint32_t>(config.n_kv_heads());
  std::map<int, std::vector<SourceTensor>> by_layer;  // llama.cpp order: globals, then blocks
  std::vector<SourceTensor> head, tail;
  for (const auto& path : weight_files(dir)) {
    auto file = std::make_shared<SafetensorsFile>(path.string());
    for (const auto& st : file->contents().tensors) {
      auto mapped = map_hf_tensor_name(config.arch, st.name);
      if (!mapped)
        throw InputError(path.string(), std::nullopt,
                         "tensor '" + st.name + "' is not part of a " +
                             std::string(arch_gguf_name(config.arch)) + " model");
      if (mapped->skip) continue;
      if (mapped->layer >= config.n_layers())
        throw InputError(path.string(), std::nullopt,
                         "tensor '" + st.name + "' is in layer " + std::to_string(mapped->layer) +
                             " but num_hidden_layers is " + std::to_string(config.n_layers()));
      SourceTensor t;
      t.name = mapped->gguf_name;
      t.type = ggml_type_for(st, path.string());
      t.shape.assign(st.shape.rbegin(), st.shape.rend());
      if (t.shape.empty()) t.shape = {1};
      t.data = file->data(st);
      t.file_offset = file->contents().data_offset + st.begin;
      t.origin = path.string() + ":" + st.name;
      if (config.arch == Arch::Llama) {
        if (t.name.ends_with("attn_q.weight") || t.name.ends_with("attn_q.bias"))
          t.transform.rope_permute_heads = n_head;
        if (t.name.ends_with("attn_k.weight") || t.name.ends_with("attn_k.bias"))
          t.transform.rope_permute_heads = n_kv;
        if (t.transform.rope_permute_heads && t.n_rows() % (2 * t.transform.rope_permute_heads) != 0)
          throw InputError(path.string(), std::nullopt,
                           "tensor '" + st.name + "' has " + std::to_string(t.n_rows()) +
                               " rows, not a multiple of 2 × heads");
      }
      if (config.arch == Arch::Gemma3 && t.name.ends_with("norm.weight")) t.transform.add = 1.0f;
      if (mapped->layer >= 0)
        by_layer[mapped->layer].push_back(std::move(t));
      else if (t.name == "output_norm.weight" || t.name == "output.weight")
        tail.push_back(std::move(t));
      else
        head.push_back(std::move(t));
    }
    s.storage.push_back(file);
  }

  if (auto factors = llama3_rope_factors(config.params); !factors.empty() && config.arch == Arch::Llama) {
    auto buffer = std::make_shared<std::vector<float>>(std::move(factors));
    SourceTensor t;
    t.name = "rope_freqs.weight";
    t.type = GgmlType::F32;
    t.shape = {buffer->size()};
    t.data = std::as_bytes(std::span<const float>(*buffer));
    t.origin = "rope_scaling (llama3) in config.json";
    head.push_back(std::move(t));
    s.storage.push_back(buffer);
  }

  for (auto& t : head) s.tensors.push_back(std::move(t));
  for (auto& [layer, ts] : by_layer)
    for (auto& t : ts) s.tensors.push_back(std::move(t));
  for (auto& t : tail) s.tensors.push_back(std::move(t));

  std::set<std::string> seen;
  for (const auto& t : s.tensors)
    if (!seen.insert(t.name).second)
      throw InputError(dir.string(), std::nullopt, "two checkpoint tensors map to '" + t.name + "'");
  if (!s.find("token_embd.weight"))
    throw InputError(dir.string(), std::nullopt, "the checkpoint has no token embedding (embed_tokens)");
  return s;
}

}  // namespace

ModelSource open_model_source(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    if (!fs::exists(path / "config.json"))
      throw InputError(path.string(), std::nullopt,
                       "folder has no config.json (expected a Hugging Face model folder)");
    return open_hf_folder(path);
  }
  if (!fs::exists(path, ec))
    throw InputError(path.string(), std::nullopt, "no such file or folder");
  return open_gguf(path);
}

}  // namespace optiq
