// Lossless conversion of a model source (HF folder or GGUF) to a GGUF file in f32, f16 or
// bf16, streamed tensor by tensor: peak memory is the mapped input plus one chunk of rows.
#pragma once

#include <cstdint>
#include <string>

#include "io/ggml_type.h"
#include "model/model_source.h"

namespace optiq {

struct ConvertOptions {
  GgmlType outtype = GgmlType::F16;  // F32, F16 or BF16
  std::string output_path;
};

struct ConvertReport {
  size_t n_tensors = 0;
  uint64_t n_params = 0;
  uint64_t tensor_bytes = 0;   // tensor data only, as llama.cpp counts model size
  uint64_t bytes_written = 0;  // whole file
  double seconds = 0;
};

// The type a tensor gets for a float outtype, by llama.cpp's converter rules: 1-D tensors,
// norms and anything not named *.weight stay F32.
GgmlType float_outtype_for(const SourceTensor& t, GgmlType outtype);

// general.file_type value llama.cpp uses for an all-one-type file (LLAMA_FTYPE_*).
uint32_t llama_file_type_for(GgmlType outtype);

ConvertReport convert_model(const ModelSource& source, const ConvertOptions& options);

}  // namespace optiq
