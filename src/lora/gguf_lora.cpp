#include "lora/gguf_lora.h"

#include <cmath>
#include <cstring>
#include <map>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "quant/float16.h"
#include "quant/quantize.h"
#include "util/error.h"

namespace optiq::lora {
namespace {

constexpr std::string_view kSuffixA = ".lora_a", kSuffixB = ".lora_b";

// A tensor's values as f32 (F32, F16, BF16 or a block type optiq dequantizes).
std::vector<float> tensor_f32(const GgufFile& file, const GgufTensorInfo& t) {
  const std::span<const std::byte> bytes = file.tensor_data(t);
  std::vector<float> out(t.n_elements);
  switch (t.type) {
    case GgmlType::F32: std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float)); break;
    case GgmlType::F16: f16_to_f32_n(reinterpret_cast<const uint16_t*>(bytes.data()), out.data(), out.size()); break;
    case GgmlType::BF16: bf16_to_f32_n(reinterpret_cast<const uint16_t*>(bytes.data()), out.data(), out.size()); break;
    default:
      if (!quantize_supported(t.type))
        throw InputError(file.path(), std::nullopt,
                         "tensor " + t.name + " has type " + std::string(ggml_type_name(t.type)) +
                             ", which optiq cannot read as LoRA factors");
      dequantize_row(t.type, bytes.data(), out.data(), static_cast<int64_t>(out.size()));
  }
  return out;
}

}  // namespace

Adapter read_gguf_lora(const std::filesystem::path& path) {
  const GgufFile file(path.string());
  const GgufMetadata& md = file.metadata();
  const auto fail = [&](const std::string& why) { throw InputError(path.string(), std::nullopt, why); };
  if (md.get_string("general.type") != "adapter")
    fail("general.type is not \"adapter\": this is not a LoRA adapter file (a model goes in the MODEL argument)");
  if (md.get_string("adapter.type") != "lora") fail("adapter.type is not \"lora\"");
  const auto arch = md.get_string("general.architecture");
  if (!arch) fail("general.architecture is missing");
  const double alpha = md.get_double("adapter.lora.alpha").value_or(0.0);
  if (!std::isfinite(alpha)) fail("adapter.lora.alpha is not a finite number");

  std::map<std::string, std::pair<const GgufTensorInfo*, const GgufTensorInfo*>> pairs;  // base name -> (a, b)
  for (const GgufTensorInfo& t : file.tensors()) {
    const std::string_view name = t.name;
    if (name.ends_with(kSuffixA))
      pairs[std::string(name.substr(0, name.size() - kSuffixA.size()))].first = &t;
    else if (name.ends_with(kSuffixB))
      pairs[std::string(name.substr(0, name.size() - kSuffixB.size()))].second = &t;
    else
      fail("tensor " + t.name + " is neither a .lora_a nor a .lora_b factor");
  }
  Adapter adapter;
  adapter.path = path.string();
  adapter.architecture = *arch;
  for (const auto& [target, ab] : pairs) {
    const auto [a, b] = ab;
    if (!a || !b) fail(target + ": " + (a ? "lora_b" : "lora_a") + " is missing");
    if (a->shape.size() != 2 || b->shape.size() != 2 || a->shape[1] != b->shape[0])
      fail(target + ": lora_a and lora_b are not [n_in, r] and [r, n_out]");
    LoraMatrix m;
    m.target = target;
    m.rank = static_cast<int64_t>(a->shape[1]);
    m.n_in = static_cast<int64_t>(a->shape[0]);
    m.n_out = static_cast<int64_t>(b->shape[1]);
    m.a = tensor_f32(file, *a);  // ggml [n_in, r] is row-major [r][n_in]
    m.b_t = transposed(tensor_f32(file, *b), m.n_out, m.rank);  // ggml [r, n_out] is row-major [n_out][r]
    // llama.cpp: scale = alpha / r, or 1 when the file's alpha is 0.
    m.scale = alpha != 0.0 ? static_cast<float>(alpha / static_cast<double>(m.rank)) : 1.0f;
    adapter.matrices.push_back(std::move(m));
  }
  return adapter;
}

void write_gguf_lora(const Adapter& adapter, const std::filesystem::path& path) {
  if (adapter.matrices.empty()) throw std::invalid_argument("write_gguf_lora: no matrices");
  // The file's alpha from the first matrix with a non-zero scale (llama.cpp reads alpha 0 as "no
  // scaling"); with none at all, alpha 1 and every B folded to zeros.
  double alpha = 1.0;
  for (const LoraMatrix& m : adapter.matrices)
    if (m.scale != 0.0f) {
      alpha = static_cast<double>(m.scale) * static_cast<double>(m.rank);
      break;
    }
  GgufMetadata md;
  md.set("general.architecture", GgufValue::string(adapter.architecture));
  md.set("general.type", GgufValue::string("adapter"));
  md.set("adapter.type", GgufValue::string("lora"));
  md.set("adapter.lora.alpha", GgufValue::of<float>(static_cast<float>(alpha)));
  std::vector<GgufTensorDecl> decls;
  for (const LoraMatrix& m : adapter.matrices) {
    decls.push_back({m.target + std::string(kSuffixA), GgmlType::F32,
                     {static_cast<uint64_t>(m.n_in), static_cast<uint64_t>(m.rank)}});
    decls.push_back({m.target + std::string(kSuffixB), GgmlType::F32,
                     {static_cast<uint64_t>(m.rank), static_cast<uint64_t>(m.n_out)}});
  }
  // alpha as llama.cpp reads it back (f32), so each folded B gives exactly its matrix's scale.
  const double file_alpha = static_cast<float>(alpha);
  write_gguf(path.string(), md, decls, [&](size_t i, GgufTensorSink& sink) {
    const LoraMatrix& m = adapter.matrices[i / 2];
    if (i % 2 == 0) return sink.write(m.a.data(), m.a.size() * sizeof(float));
    const double fold = static_cast<double>(m.scale) * static_cast<double>(m.rank) / file_alpha;
    std::vector<float> b = transposed(m.b_t, m.rank, m.n_out);  // [n_out, rank]
    if (fold != 1.0)
      for (float& v : b) v = static_cast<float>(v * fold);
    sink.write(b.data(), b.size() * sizeof(float));
  });
}

}  // namespace optiq::lora
