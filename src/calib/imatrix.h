// Computing an importance matrix the way llama-imatrix does: the text is tokenized once (with
// BOS as the vocabulary asks), cut into chunks of n_ctx tokens, the first token of every chunk
// is replaced by BOS (when the vocabulary adds one), and each chunk is evaluated from an empty
// KV cache. For every weight matrix of the transformer blocks ("blk.*"; not output.weight, and
// not batches of fewer than 16 tokens, which llama-imatrix skips), it sums the square of each
// input column over all tokens and counts the tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/model.h"
#include "io/imatrix_file.h"

namespace optiq {

struct ImatrixOptions {
  int64_t n_ctx = 512;       // tokens per chunk (llama-imatrix -c)
  int64_t max_chunks = -1;   // chunks to evaluate; -1: as many as the text holds
  int threads = 1;           // chunks evaluated in parallel
  std::string dataset;       // recorded in imatrix.datasets (the text file as given)
  int32_t bos = -1;          // BOS id put at the start of every chunk; -1: none
};

// `tokens`: the whole text, tokenized. Throws InputError when the text has fewer than
// 2 × n_ctx tokens (llama-imatrix's minimum). `on_chunk(done, total)` reports progress.
Imatrix compute_imatrix(const engine::Model& model, const std::vector<int32_t>& tokens,
                        const ImatrixOptions& options,
                        const std::function<void(int64_t, int64_t)>& on_chunk = {});

// The importance matrix optiq convert quantizes with: every sequence evaluated from an empty
// cache as it is (no BOS substitution), every matmul weight recorded, the output head included
// (for a tied embedding, under token_embd.weight).
Imatrix compute_sequence_imatrix(const engine::Model& model, const std::vector<std::vector<int32_t>>& sequences);

}  // namespace optiq
