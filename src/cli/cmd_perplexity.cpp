#include <algorithm>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "cli/commands.h"
#include "cli/runnable_model.h"
#include "cli/kv_cache_options.h"
#include "engine/model.h"
#include "engine/threads.h"
#include "eval/kl_divergence.h"
#include "eval/logits_file.h"
#include "eval/perplexity.h"
#include "model/tokenizer.h"
#include "util/error.h"

namespace optiq::cli {
namespace {

struct PerplexityArgs {
  std::string model, text_file, base_file;
  int64_t n_ctx = 0;      // 0: 512 for perplexity, the base file's for KL divergence
  int64_t n_batch = 2048;
  int64_t n_chunks = -1;  // < 0: all
  bool kl_divergence = false;
  int threads = 0;        // matmul threads, 0: the number of cores
  std::vector<std::string> lora;  // --lora PATH[:SCALE]
  KVCacheArgs kv;
};


// llama-perplexity only warns here; optiq's engine refuses contexts beyond the trained one
// (make_kv_cache), so say so before any work is done.
void check_trained_context(const engine::Model& model, int64_t n_ctx) {
  if (n_ctx > model.hp.n_ctx_train)
    throw InputError("optiq perplexity", std::nullopt,
                     "a context of " + std::to_string(n_ctx) + " tokens is longer than the " +
                         std::to_string(model.hp.n_ctx_train) +
                         " the model was trained on; the engine does not run beyond it (use a smaller -c)");
}

int run_perplexity(const PerplexityArgs& args, const engine::Model& model, const Tokenizer& tok,
                   const eval::ChunkSetup& base_setup) {
  if (args.text_file.empty())
    throw InputError("optiq perplexity", std::nullopt, "give the text to evaluate with -f FILE");
  eval::ChunkSetup setup = base_setup;
  setup.n_ctx = args.n_ctx > 0 ? args.n_ctx : 512;
  if (eval::scored_per_chunk(setup.n_ctx) < 1)
    throw InputError("-c", std::nullopt, "a context of " + std::to_string(setup.n_ctx) + " tokens scores nothing; use at least 3");
  check_trained_context(model, setup.n_ctx);
  const std::vector<int32_t> tokens = tok.encode(eval::read_perplexity_text(args.text_file), /*add_special=*/true, /*parse_special=*/false);
  const auto n_tokens = static_cast<int64_t>(tokens.size());
  if (n_tokens < 2 * setup.n_ctx)
    throw InputError(args.text_file, std::nullopt,
                     "tokenizes to only " + std::to_string(n_tokens) + " tokens; perplexity with a context of " +
                         std::to_string(setup.n_ctx) + " needs at least " + std::to_string(2 * setup.n_ctx));
  const int64_t n_chunk_max = n_tokens / setup.n_ctx;
  const int64_t n_chunk = args.n_chunks < 0 ? n_chunk_max : std::min(args.n_chunks, n_chunk_max);
  std::fprintf(stderr, "%s\n", kv_cache_summary(engine::make_kv_cache(model, setup.n_ctx, setup.kv)).c_str());
  std::fprintf(stderr, "perplexity: %lld tokens, %lld chunks of %lld, batch %lld\n", static_cast<long long>(n_tokens),
               static_cast<long long>(n_chunk), static_cast<long long>(setup.n_ctx),
               static_cast<long long>(setup.n_batch));

  std::optional<eval::LogitsFileWriter> base;
  if (!args.base_file.empty())
    base.emplace(args.base_file, static_cast<int32_t>(setup.n_ctx), static_cast<int32_t>(model.hp.n_vocab),
                 std::span(tokens).first(static_cast<size_t>(n_chunk * setup.n_ctx)));
  const eval::PerplexityResult r =
      eval::compute_perplexity(model, tokens, n_chunk, setup, base ? &*base : nullptr, stdout, stderr);
  if (r.final.has_error)
    std::printf("Final estimate: PPL = %.4lf +/- %.5lf\n", r.final.ppl, r.final.error);
  else
    std::printf("Final estimate: PPL = %.4lf (the variance of log(prob) came out negative: no error estimate)\n",
                r.final.ppl);
  if (base) base->commit();
  return 0;
}

int run_kl_divergence(const PerplexityArgs& args, const engine::Model& model, const Tokenizer& tok,
                      const eval::ChunkSetup& base_setup) {
  if (args.base_file.empty())
    throw InputError("optiq perplexity", std::nullopt,
                     "--kl-divergence compares against a base file: give it with --kl-divergence-base FILE");
  const eval::LogitsFile base(args.base_file);
  if (base.n_vocab() != model.hp.n_vocab)
    throw InputError(base.path(), 12,
                     "the base was computed over a vocabulary of " + std::to_string(base.n_vocab()) +
                         " tokens, the model has " + std::to_string(model.hp.n_vocab) + ": it belongs to another model");
  if (args.n_ctx > 0 && args.n_ctx < base.n_ctx())
    throw InputError(base.path(), 8,
                     "the base was computed with a context of " + std::to_string(base.n_ctx()) +
                         " tokens, more than -c " + std::to_string(args.n_ctx) + "; increase -c or leave it out");
  if (!args.text_file.empty()) {
    const std::vector<int32_t> text = tok.encode(eval::read_perplexity_text(args.text_file), true, false);
    for (size_t i = 0; i < base.tokens().size(); ++i)
      if (i >= text.size() || text[i] != base.tokens()[i])
        throw InputError(base.path(), eval::LogitsFile::token_offset(static_cast<int64_t>(i)),
                         "token " + std::to_string(i) + " of the base is " + std::to_string(base.tokens()[i]) + ", " +
                             args.text_file + " has " + (i < text.size() ? std::to_string(text[i]) : "no more tokens") +
                             " there: the base was computed on another text or with another tokenizer");
  }
  eval::ChunkSetup setup = base_setup;
  setup.n_ctx = base.n_ctx();
  check_trained_context(model, setup.n_ctx);
  const int64_t n_chunk = args.n_chunks < 0 ? base.n_chunk() : std::min<int64_t>(args.n_chunks, base.n_chunk());
  std::fprintf(stderr, "%s\n", kv_cache_summary(engine::make_kv_cache(model, setup.n_ctx, setup.kv)).c_str());
  std::fprintf(stderr, "kl-divergence: %lld chunks of %lld tokens from %s\n", static_cast<long long>(n_chunk),
               static_cast<long long>(setup.n_ctx), base.path().c_str());
  const eval::KldResult r = eval::compute_kl_divergence(model, base, n_chunk, setup, stdout, stderr);
  if (r.sums.count < 100) {
    std::fprintf(stderr, "optiq: only %lld tokens were scored; the summary statistics need at least 100\n",
                 static_cast<long long>(r.sums.count));
    return 0;
  }
  eval::print_kld_summary(r, stdout);
  return 0;
}

}  // namespace

Command register_perplexity(CLI::App& app) {
  auto args = std::make_shared<PerplexityArgs>();
  CLI::App* sub = app.add_subcommand(
      "perplexity", "Perplexity of a text, or KL divergence against a base model's log-probabilities, as llama-perplexity computes them");
  sub->add_option("model", args->model, ".gguf file, Hugging Face folder, or hub id org/name[@revision]")->required();
  sub->add_option("-f,--file", args->text_file, "the text to evaluate (one trailing newline is dropped)");
  sub->add_option("-c,--ctx-size", args->n_ctx,
                  "tokens per chunk (default 512; with --kl-divergence, the base file's)")
      ->check(CLI::PositiveNumber);
  sub->add_option("-b,--batch-size", args->n_batch, "most tokens per forward pass (default 2048)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--chunks", args->n_chunks, "evaluate at most N chunks (default: all)")->check(CLI::PositiveNumber);
  sub->add_option("--kl-divergence-base", args->base_file,
                  "llama.cpp's log-probability file: written by a perplexity run, read by --kl-divergence");
  sub->add_flag("--kl-divergence", args->kl_divergence,
                "compare the model's distributions with those in --kl-divergence-base (-f optional: "
                "when given, its tokens must match the base's)");
  sub->add_option("-t,--threads", args->threads, "matmul threads (default: the number of cores)")
      ->check(CLI::PositiveNumber);
  add_kv_cache_options(sub, args->kv);
  add_lora_option(sub, args->lora);
  return {sub, [args] {
            engine::set_num_threads(args->threads);
            const RunnableModel runnable = load_runnable_model(args->model, args->lora);
            const std::string& path = runnable.path;
            const engine::Model& model = runnable.model;
            const Tokenizer& tok = runnable.tok;
            if (tok.add_eos)
              throw InputError(path, std::nullopt,
                               "the vocabulary appends EOS to every text, which perplexity does not support "
                               "(llama-perplexity refuses it too)");
            if (tok.add_bos && tok.bos < 0)
              throw InputError(path, std::nullopt, "the vocabulary adds BOS but names no BOS token");
            eval::ChunkSetup setup;
            setup.n_batch = args->n_batch;
            setup.bos = tok.add_bos ? tok.bos : -1;
            setup.kv = kv_cache_config(args->kv, model);
            return args->kl_divergence ? run_kl_divergence(*args, model, tok, setup)
                                       : run_perplexity(*args, model, tok, setup);
          }};
}

}  // namespace optiq::cli
