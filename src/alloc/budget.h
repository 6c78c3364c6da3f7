// Size budgets for `optiq convert`: what --target-bpw and --target-size mean in bytes. Sizes
// count tensor data over the whole file (every tensor with its scales, the unquantized norms
// included), as llama-quantize and `optiq info` report model size; bits per weight are that
// size × 8 over all parameters (Q4_K is 4.5, Q8_0 is 8.5).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace optiq::alloc {

// "300MB", "300 MB", "0.3GB", "512MiB", "2.5GiB", "800K", "123456" (bytes); decimal units are
// powers of 1000, the "i" units powers of 1024. nullopt for anything else (a mix name, say).
std::optional<uint64_t> parse_byte_size(const std::string& text);

// Bytes of tensor data at `bpw` bits per weight over n_params parameters (rounded down).
uint64_t bytes_for_bpw(double bpw, uint64_t n_params);

double bits_per_weight(uint64_t bytes, uint64_t n_params);

}  // namespace optiq::alloc
