// A ggml type's name in upper case ("Q4_K"; ggml's own is "q4_K"), as llama.cpp's tools print
// types in tables and labels.
#pragma once

#include <string>

#include "io/ggml_type.h"

namespace optiq {

inline std::string ggml_type_label(GgmlType type) {
  std::string s(ggml_type_name(type));
  for (auto& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

}  // namespace optiq
