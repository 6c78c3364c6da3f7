// Importance-matrix files in both forms llama.cpp reads and writes (tools/imatrix):
//
// GGUF form: general.type = "imatrix", imatrix.datasets (string array), imatrix.chunk_count and
// imatrix.chunk_size (u32), and per weight matrix NAME two F32 tensors: NAME.in_sum2
// [n_cols, n_mat] (sum over tokens of the squared input activation of each column, one row per
// matrix: n_mat > 1 for MoE expert stacks) and NAME.counts [1, n_mat] (tokens summed).
//
// Legacy .dat form (all little-endian):
//   i32 n_entries, then per entry: i32 name_len, name bytes, i32 ncall, i32 nval,
//   nval × f32 (per-column mean square × ncall);
//   optionally: i32 chunk_count, i32 dataset_len, dataset bytes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace optiq {

struct ImatrixEntry {
  // GGUF form: [n_mat * n_cols] raw sums of squares; legacy form: mean square × ncall.
  std::vector<float> sums;
  // GGUF form: [n_mat] tokens summed per matrix; legacy form: [1] = ncall.
  std::vector<int64_t> counts;
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // weight name -> statistics, sorted by name
  std::vector<std::string> datasets;            // text files the statistics came from
  int32_t chunk_count = 0;                      // chunks of text evaluated
  int32_t chunk_size = 0;                       // tokens per chunk (0 when read from .dat)
  bool legacy = false;                          // entries hold the .dat form (see ImatrixEntry)
};

// Reads either form (a file starting with "GGUF" is the GGUF form). Throws InputError with the
// offset or tensor at fault for a truncated or inconsistent file.
Imatrix read_imatrix_file(const std::string& path);

// Both writers take the GGUF (raw) form and write atomically (temp file + rename).
void write_imatrix_gguf(const std::string& path, const Imatrix& m);
// Entries whose counts are all zero are left out, as llama-imatrix does.
void write_imatrix_dat(const std::string& path, const Imatrix& m);

// Per-column importance as llama-quantize derives it: for each matrix, sums / count (all ones
// for a matrix that saw no tokens); legacy entries: sums / ncall. [n_mat * n_cols] per name.
std::map<std::string, std::vector<float>> imatrix_importance(const Imatrix& m);

}  // namespace optiq
