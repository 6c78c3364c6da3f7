#include "calib/imatrix.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <thread>

#include "util/error.h"

namespace optiq {
namespace {

// llama-imatrix ignores matrix products over fewer tokens than this.
constexpr int64_t kMinTokens = 16;

// Sums of one chunk: weight name -> (per-column sums of squares [n_in], tokens).
using ChunkSums = std::map<std::string, std::pair<std::vector<float>, int64_t>>;

// `every_weight`: also the head and small batches (optiq's own use), not only what
// llama-imatrix records.
ChunkSums evaluate_chunk(const engine::Model& model, std::vector<int32_t> chunk, bool every_weight) {
  ChunkSums sums;
  engine::KVCache cache = engine::make_kv_cache(model, static_cast<int64_t>(chunk.size()));
  std::vector<float> logits(static_cast<size_t>(model.hp.n_vocab));
  engine::forward(model, cache, chunk, /*all_logits=*/false, logits.data(),
                  [&](const engine::Weight& w, const float* x, int64_t n_tokens) {
                    if (!every_weight && (n_tokens < kMinTokens || !w.name.starts_with("blk."))) return;
                    auto& [acc, count] = sums[w.name];
                    acc.resize(static_cast<size_t>(w.n_in), 0.0f);
                    for (int64_t t = 0; t < n_tokens; ++t) {
                      const float* row = x + t * w.n_in;
                      for (int64_t j = 0; j < w.n_in; ++j) acc[j] += row[j] * row[j];
                    }
                    count += n_tokens;
                  });
  return sums;
}

void add_chunk(Imatrix& m, const ChunkSums& sums) {
  for (const auto& [name, s] : sums) {
    ImatrixEntry& e = m.entries[name];
    if (e.sums.empty()) {
      e.sums.assign(s.first.size(), 0.0f);
      e.counts.assign(1, 0);
    }
    for (size_t j = 0; j < s.first.size(); ++j) e.sums[j] += s.first[j];
    e.counts[0] += s.second;
    for (float v : e.sums)
      if (!std::isfinite(v))
        throw InputError(name, std::nullopt, "the squared activations overflowed (non-finite sums)");
  }
}

}  // namespace

Imatrix compute_imatrix(const engine::Model& model, const std::vector<int32_t>& tokens,
                        const ImatrixOptions& opt, const std::function<void(int64_t, int64_t)>& on_chunk) {
  const int64_t n_ctx = opt.n_ctx;
  if (n_ctx <= 0) throw InputError("-c", std::nullopt, "the chunk size must be positive");
  if (static_cast<int64_t>(tokens.size()) < 2 * n_ctx)
    throw InputError(opt.dataset, std::nullopt,
                     "the text has " + std::to_string(tokens.size()) + " tokens; a context of " +
                         std::to_string(n_ctx) + " needs at least " + std::to_string(2 * n_ctx));
  const int64_t available = static_cast<int64_t>(tokens.size()) / n_ctx;
  const int64_t n_chunk = opt.max_chunks < 0 ? available : std::min(opt.max_chunks, available);

  Imatrix m;
  m.chunk_size = static_cast<int32_t>(n_ctx);
  if (!opt.dataset.empty()) m.datasets.push_back(opt.dataset);
  const int64_t threads = std::max(1, opt.threads);
  // Chunks run `threads` at a time; their sums are added in chunk order, so the result does
  // not depend on the thread count.
  for (int64_t first = 0; first < n_chunk; first += threads) {
    const int64_t n_round = std::min(threads, n_chunk - first);
    std::vector<ChunkSums> results(static_cast<size_t>(n_round));
    std::vector<std::exception_ptr> errors(static_cast<size_t>(n_round));
    auto run = [&](int64_t k) {
      try {
        const auto begin = tokens.begin() + (first + k) * n_ctx;
        std::vector<int32_t> chunk(begin, begin + n_ctx);
        if (opt.bos >= 0) chunk[0] = opt.bos;
        results[static_cast<size_t>(k)] = evaluate_chunk(model, std::move(chunk), false);
      } catch (...) {
        errors[static_cast<size_t>(k)] = std::current_exception();
      }
    };
    std::vector<std::thread> pool;
    for (int64_t k = 1; k < n_round; ++k) pool.emplace_back(run, k);
    run(0);
    for (auto& t : pool) t.join();
    for (int64_t k = 0; k < n_round; ++k) {
      if (errors[static_cast<size_t>(k)]) std::rethrow_exception(errors[static_cast<size_t>(k)]);
      add_chunk(m, results[static_cast<size_t>(k)]);
      m.chunk_count = static_cast<int32_t>(first + k + 1);
      if (on_chunk) on_chunk(first + k + 1, n_chunk);
    }
  }
  return m;
}

Imatrix compute_sequence_imatrix(const engine::Model& model, const std::vector<std::vector<int32_t>>& sequences) {
  Imatrix m;
  for (const auto& seq : sequences) {
    add_chunk(m, evaluate_chunk(model, seq, true));
    ++m.chunk_count;
  }
  m.chunk_size = sequences.empty() ? 0 : static_cast<int32_t>(sequences[0].size());
  return m;
}

}  // namespace optiq
