// Test helper: a copy of a GGUF file with one metadata key set, for variants of a real model
// (a chat template added, a shorter trained context, ...).
#pragma once

#include <string>
#include <vector>

#include "io/gguf.h"
#include "io/gguf_writer.h"

namespace optiq::test {

inline void copy_gguf_with(const std::string& src, const std::string& dst, const std::string& key, GgufValue value) {
  GgufFile in(src);
  GgufMetadata meta = in.metadata();
  meta.set(key, std::move(value));
  std::vector<GgufTensorDecl> decls;
  for (const auto& t : in.tensors()) decls.push_back({t.name, t.type, t.shape});
  write_gguf(dst, meta, decls, [&](size_t i, GgufTensorSink& sink) {
    const auto data = in.tensor_data(in.tensors()[i]);
    sink.write(data.data(), data.size());
  });
}

}  // namespace optiq::test
