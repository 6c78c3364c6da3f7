#include "lora/merge.h"

#include <cmath>
#include <cstring>
#include <map>
#include <vector>

#include "io/gguf_writer.h"
#include "quant/float16.h"
#include "quant/quantize.h"
#include "util/error.h"

namespace optiq::lora {
namespace {

// One f32 row stored as `type` (ggml_row_bytes(type, n) bytes at dst).
void store_row(GgmlType type, const float* row, std::byte* dst, int64_t n) {
  switch (type) {
    case GgmlType::F32: std::memcpy(dst, row, static_cast<size_t>(n) * sizeof(float)); break;
    case GgmlType::F16: f32_to_f16_n(row, reinterpret_cast<uint16_t*>(dst), static_cast<size_t>(n)); break;
    case GgmlType::BF16: f32_to_bf16_n(row, reinterpret_cast<uint16_t*>(dst), static_cast<size_t>(n)); break;
    default: quantize_row(type, row, dst, n, nullptr);
  }
}

bool writable(GgmlType type) {
  return type == GgmlType::F32 || type == GgmlType::F16 || type == GgmlType::BF16 || quantize_supported(type);
}

struct Update {
  const LoraMatrix* m = nullptr;
  float scale = 0;  // the matrix's own times the user's
};

}  // namespace

void merge_adapters(const ModelSource& base, std::span<const ScaledAdapter> adapters, std::optional<GgmlType> type,
                    const std::string& out_path) {
  if (base.kind != SourceKind::Gguf)
    throw InputError(base.path, std::nullopt, "lora merge writes from a GGUF base; convert the folder first (optiq convert)");
  std::map<std::string, std::vector<Update>, std::less<>> updates;  // base tensor -> its deltas
  for (const ScaledAdapter& a : adapters)
    for (const LoraMatrix& m : a.adapter->matrices) updates[m.target].push_back({&m, m.scale * a.scale});
  std::vector<GgufTensorDecl> decls;
  for (const SourceTensor& t : base.tensors) {
    GgmlType out = t.type;
    if (updates.contains(t.name)) {
      out = type.value_or(t.type);
      if (!writable(out) || !ggml_row_bytes(out, t.row_elems()))
        throw InputError(t.origin, std::nullopt,
                         "merged tensor " + t.name + " cannot be written as " + std::string(ggml_type_name(out)) +
                             (type ? "" : " (its stored type); choose one with --type"));
    }
    decls.push_back({t.name, out, t.shape});
  }
  GgufMetadata md = base.metadata;
  if (type) md.erase("general.file_type");  // the mix changed; llama.cpp reads a missing one as "unknown"
  write_gguf(out_path, md, decls, [&](size_t i, GgufTensorSink& sink) {
    const SourceTensor& t = base.tensors[i];
    const auto it = updates.find(t.name);
    const uint64_t n_rows = t.n_rows(), n = t.row_elems();
    if (it == updates.end()) {
      std::vector<std::byte> row(*ggml_row_bytes(t.type, n));
      for (uint64_t r = 0; r < n_rows; ++r) {
        read_rows_raw(t, r, 1, row.data());
        sink.write(row.data(), row.size());
      }
      return;
    }
    const GgmlType out = decls[i].type;
    std::vector<float> w(n);
    std::vector<std::byte> packed(*ggml_row_bytes(out, n));
    for (uint64_t r = 0; r < n_rows; ++r) {
      read_rows_f32(t, r, 1, w.data());
      for (const Update& u : it->second) {
        const LoraMatrix& m = *u.m;
        // W[r, :] += scale · Σ_j B[r, j] · A[j, :]
        for (int64_t j = 0; j < m.rank; ++j) {
          const float c = u.scale * m.b_t[static_cast<size_t>(j * m.n_out + static_cast<int64_t>(r))];
          const float* a = m.a.data() + j * m.n_in;
          for (uint64_t k = 0; k < n; ++k) w[k] += c * a[k];
        }
      }
      for (uint64_t k = 0; k < n; ++k)
        if (!std::isfinite(w[k]))
          throw InputError(t.origin, std::nullopt, "merged tensor " + t.name + " has a non-finite value in row " + std::to_string(r));
      store_row(out, w.data(), packed.data(), static_cast<int64_t>(n));
      sink.write(packed.data(), packed.size());
    }
  });
}

}  // namespace optiq::lora
