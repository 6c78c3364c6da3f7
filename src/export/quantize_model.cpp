#include "export/quantize_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <numeric>
#include <thread>

#include <sys/mman.h>
#include <unistd.h>

#include "export/convert.h"
#include "io/gguf_writer.h"
#include "quant/float16.h"
#include "quant/quantize.h"
#include "util/error.h"

namespace optiq {
namespace {

constexpr uint64_t kSlabFloats = 1u << 22;  // rows are converted ~16 MB of f32 at a time

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }
bool can_write(GgmlType t) { return is_float_type(t) || quantize_supported(t); }
bool can_read(GgmlType t) { return is_float_type(t) || quantize_supported(t); }

uint64_t tensor_bytes(GgmlType type, const std::vector<uint64_t>& shape) {
  const uint64_t n = std::accumulate(shape.begin(), shape.end(), uint64_t{1}, std::multiplies<>());
  return *ggml_row_bytes(type, shape[0]) * (n / shape[0]);
}

// The type the recipe sees for a tensor: the stored one for GGUF; for a Hugging Face folder
// the one `optiq convert` would store it in (1-D tensors and norms become F32).
GgmlType recipe_source_type(const ModelSource& src, const SourceTensor& t) {
  return src.kind == SourceKind::HuggingFace ? float_outtype_for(t, t.type) : t.type;
}

// Decodes one written row back to floats, to check it.
void row_to_f32(GgmlType type, const std::byte* row, float* out, int64_t n) {
  switch (type) {
    case GgmlType::F32: std::memcpy(out, row, static_cast<size_t>(n) * sizeof(float)); break;
    case GgmlType::F16: f16_to_f32_n(reinterpret_cast<const uint16_t*>(row), out, static_cast<size_t>(n)); break;
    case GgmlType::BF16: bf16_to_f32_n(reinterpret_cast<const uint16_t*>(row), out, static_cast<size_t>(n)); break;
    default: dequantize_row(type, row, out, n);
  }
}

void encode_row(GgmlType type, const float* src, std::byte* dst, int64_t n, const float* importance) {
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); break;
    case GgmlType::F16: f32_to_f16_n(src, reinterpret_cast<uint16_t*>(dst), static_cast<size_t>(n)); break;
    case GgmlType::BF16: f32_to_bf16_n(src, reinterpret_cast<uint16_t*>(dst), static_cast<size_t>(n)); break;
    default: quantize_row(type, src, dst, n, importance);
  }
}

// Rows of shape[0] elements [row0, row0 + n) as f32. A 1-D tensor is one row.
void read_rows(const SourceTensor& t, uint64_t row0, uint64_t n, float* out) {
  if (t.shape.size() == 1) read_rows_f32(t, 0, t.n_elements(), out);
  else read_rows_f32(t, row0, n, out);
}

bool all_finite(const float* x, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return false;
  return true;
}

// A written tensor's input pages are not read again: dropping them from the resident set keeps
// it at about one tensor, as llama-quantize does by unmapping each tensor. Only for views into
// a read-only file mapping (file_offset > 0), where the pages simply refault from the file.
void release_input_pages(const SourceTensor& t) {
  if (t.file_offset == 0 || t.data.empty()) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(t.data.data());
  const uintptr_t first = (begin + page - 1) / page * page, last = (begin + t.data.size()) / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

void write_tensor(const PlannedTensor& p, int threads, GgufTensorSink& sink) {
  const SourceTensor& t = *p.source;
  if (t.type == p.to && t.transform.identity()) {
    constexpr size_t kSlice = 16u << 20;
    for (size_t off = 0; off < t.data.size(); off += kSlice) sink.write(t.data.data() + off, std::min(kSlice, t.data.size() - off));
    return;
  }
  const uint64_t width = t.shape[0];
  const uint64_t n_rows = t.n_elements() / width;
  const uint64_t row_bytes = *ggml_row_bytes(p.to, width);
  // Experts of a 3-D tensor are stacked along the rows; each has its own imatrix slice.
  const uint64_t rows_per_matrix = t.shape.size() >= 2 ? t.shape[1] : 1;
  const uint64_t slab_rows = std::max<uint64_t>(1, kSlabFloats / width);
  std::vector<float> f32(std::min(slab_rows, n_rows) * width);
  std::vector<std::byte> out(std::min(slab_rows, n_rows) * row_bytes);
  for (uint64_t r0 = 0; r0 < n_rows; r0 += slab_rows) {
    const uint64_t n = std::min(slab_rows, n_rows - r0);
    const int n_threads = static_cast<int>(std::min<uint64_t>(std::max(1, threads), n));
    std::vector<std::exception_ptr> errors(static_cast<size_t>(n_threads));
    auto work = [&](int k) {
      try {
        std::vector<float> check(width);
        // Thread k takes a contiguous share of the slab's rows.
        const uint64_t lo = n * k / n_threads, hi = n * (k + 1) / n_threads;
        if (lo == hi) return;
        read_rows(t, r0 + lo, hi - lo, f32.data() + lo * width);
        for (uint64_t r = lo; r < hi; ++r) {
          const uint64_t row = r0 + r;
          // llama.cpp's loader refuses such weights too; quantizers would hide them as zeros.
          if (!all_finite(f32.data() + r * width, width))
            throw InputError(t.origin, std::nullopt, "row " + std::to_string(row) + " has NaN/Inf weights (not finite)");
          const float* imp = p.importance ? p.importance->data() + (row / rows_per_matrix) * width : nullptr;
          std::byte* dst = out.data() + r * row_bytes;
          encode_row(p.to, f32.data() + r * width, dst, static_cast<int64_t>(width), imp);
          row_to_f32(p.to, dst, check.data(), static_cast<int64_t>(width));
          if (!all_finite(check.data(), width))
            throw InputError(t.origin, std::nullopt,
                             "row " + std::to_string(row) + " is not finite after conversion to " +
                                 std::string(ggml_type_name(p.to)) + " (weights out of its range)");
        }
      } catch (...) {
        errors[static_cast<size_t>(k)] = std::current_exception();
      }
    };
    std::vector<std::thread> pool;
    for (int k = 1; k < n_threads; ++k) pool.emplace_back(work, k);
    work(0);
    for (auto& th : pool) th.join();
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
    sink.write(out.data(), n * row_bytes);
  }
}

}  // namespace

QuantizePlan plan_quantization(const ModelSource& source, const QuantizeOptions& options) {
  const RecipeModel model = recipe_model_from_metadata(source.metadata, source.path);
  RecipeOptions recipe = options.recipe;
  recipe.has_imatrix = !options.imatrix.empty();

  std::vector<RecipeTensor> rts;
  for (const auto& t : source.tensors) rts.push_back({t.name, t.shape, recipe_source_type(source, t)});
  sort_like_llama_cpp(rts);
  const std::vector<TensorChoice> choices = plan_tensor_types(model, recipe, rts);

  for (const auto& [name, values] : options.imatrix)
    for (float v : values)
      if (!std::isfinite(v))
        throw InputError(options.imatrix_path, std::nullopt, "entry '" + name + "' has a non-finite value");

  QuantizePlan plan;
  plan.file_type = static_cast<uint32_t>(recipe.mix);
  size_t imatrix_hits = 0;
  for (size_t i = 0; i < rts.size(); ++i) {
    const SourceTensor& t = *source.find(rts[i].name);
    PlannedTensor p;
    p.source = &t;
    p.from = rts[i].type;
    p.to = choices[i].type;
    p.fell_back = choices[i].fell_back;
    if (!can_write(p.to))
      throw InputError(t.name, std::nullopt, "optiq cannot quantize to " + std::string(ggml_type_name(p.to)) + " yet");
    if ((p.to != t.type || !t.transform.identity()) && !can_read(t.type))
      throw InputError(t.origin, std::nullopt,
                       "is stored as " + std::string(ggml_type_name(t.type)) + ", which optiq cannot dequantize");
    if (options.imatrix.count(t.name)) ++imatrix_hits;
    if (p.to != p.from && !is_float_type(p.to)) {
      if (auto it = options.imatrix.find(t.name); it != options.imatrix.end()) {
        const uint64_t n_mat = t.shape.size() >= 3 ? t.shape[2] : 1;
        if (it->second.size() == t.shape[0] * n_mat)
          p.importance = &it->second;
        else if (t.name != "token_embd.weight" && t.name != "per_layer_token_embd.weight")
          throw InputError(options.imatrix_path, std::nullopt,
                           "entry '" + t.name + "' has " + std::to_string(it->second.size()) + " values but the tensor needs " +
                               std::to_string(t.shape[0] * n_mat) + " (an importance matrix of another model?)");
      }
      if (choices[i].requires_imatrix && !p.importance)
        throw InputError(t.name, std::nullopt,
                         std::string(ggml_type_name(p.to)) + " in " + std::string(quant_mix_name(recipe.mix)) +
                             " needs an importance matrix entry for this tensor (--imatrix)");
    }
    p.bytes_from = t.data.size();
    p.bytes_to = p.to == t.type ? t.data.size() : tensor_bytes(p.to, t.shape);
    plan.n_fallback += p.fell_back ? 1 : 0;
    plan.n_params += t.n_elements();
    plan.bytes_from += p.bytes_from;
    plan.bytes_to += p.bytes_to;
    plan.tensors.push_back(p);
  }
  if (!options.imatrix.empty() && imatrix_hits == 0)
    throw InputError(options.imatrix_path, std::nullopt,
                     "none of its " + std::to_string(options.imatrix.size()) +
                         " entries names a tensor of this model (an importance matrix of another model?)");
  return plan;
}

void write_quantized(const ModelSource& source, const QuantizePlan& plan, const QuantizeOptions& options,
                     const std::function<void(size_t)>& on_tensor) {
  GgufMetadata md = source.metadata;
  // llama-quantize re-sets these, which moves them to the end.
  md.erase("general.quantization_version");
  md.set("general.quantization_version", GgufValue::of<uint32_t>(2));
  md.erase("general.file_type");
  md.set("general.file_type", GgufValue::of<uint32_t>(plan.file_type));
  for (const char* k : {"split.no", "split.count", "split.tensors.count"}) md.erase(k);
  if (!options.imatrix.empty()) {
    md.set("quantize.imatrix.file", GgufValue::string(options.imatrix_path.substr(0, 127)));
    if (!options.imatrix_datasets.empty())
      md.set("quantize.imatrix.dataset", GgufValue::string(options.imatrix_datasets[0].substr(0, 127)));
    md.set("quantize.imatrix.entries_count", GgufValue::of<uint32_t>(static_cast<uint32_t>(options.imatrix.size())));
    if (options.imatrix_chunks > 0)
      md.set("quantize.imatrix.chunks_count", GgufValue::of<uint32_t>(static_cast<uint32_t>(options.imatrix_chunks)));
  }
  std::vector<GgufTensorDecl> decls;
  for (const auto& p : plan.tensors) decls.push_back({p.source->name, p.to, p.source->shape});
  write_gguf(options.output_path, md, decls, [&](size_t i, GgufTensorSink& sink) {
    write_tensor(plan.tensors[i], options.threads, sink);
    release_input_pages(*plan.tensors[i].source);
    if (on_tensor) on_tensor(i);
  });
}

}  // namespace optiq
