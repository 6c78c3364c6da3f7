#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "cli/commands.h"
#include "cli/runnable_model.h"
#include "cli/kv_cache_options.h"
#include "engine/model.h"
#include "engine/ops.h"
#include "engine/sampling.h"
#include "engine/threads.h"
#include "model/chat_prompt.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "spec/ngram_draft.h"
#include "spec/speculative.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/utf8.h"

namespace optiq::cli {
namespace {

// A draft model must spell every token as the target does: its tokens are the target's.
void check_same_vocabulary(const Tokenizer& target, const Tokenizer& draft, const std::string& draft_path) {
  if (draft.n_tokens() != target.n_tokens())
    throw InputError(draft_path, std::nullopt,
                     "the draft model has " + std::to_string(draft.n_tokens()) + " tokens, the model " +
                         std::to_string(target.n_tokens()) + ": a draft needs the same vocabulary");
  for (int32_t id = 0; id < static_cast<int32_t>(target.n_tokens()); ++id)
    if (draft.token_to_piece(id) != target.token_to_piece(id))
      throw InputError(draft_path, std::nullopt,
                       "token " + std::to_string(id) + " differs from the model's: a draft needs the same vocabulary");
}

}  // namespace

Command register_generate(CLI::App& app) {
  struct Args {
    std::string model, prompt, dump_logprobs, system, chat_template_file;
    int64_t n_predict = 128, n_ctx = 0;
    bool chat = false;
    engine::SamplingParams sampling;
    std::optional<uint32_t> seed;  // unset: a random seed, printed
    int threads = 0;
    KVCacheArgs kv;
    std::vector<std::string> lora;  // --lora PATH[:SCALE]
    std::string spec;               // "ngram", or empty
    std::string draft;              // a draft model, or empty
    spec::SpecParams spec_params;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("generate", "Continue a prompt, or answer it as a chat, with optiq's engine");
  sub->add_option("model", args->model, ".gguf file, Hugging Face folder, or hub id org/name[@revision]")->required();
  sub->add_option("-p,--prompt", args->prompt, "the text to continue (BOS is added as the vocabulary asks), or the user message with --chat")->required();
  sub->add_option("-n,--n-predict", args->n_predict, "most tokens to generate (default 128); stops early at end of text")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("-c,--ctx-size", args->n_ctx, "context size in tokens (default: the trained context, at most 4096)")
      ->check(CLI::PositiveNumber);
  sub->add_option("-t,--threads", args->threads, "matmul threads (default: the number of cores)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--chat", args->chat, "render the prompt as a user message with the model's chat template, ending with the assistant's turn");
  sub->add_option("--system", args->system, "with --chat: a system message before the user's");
  sub->add_option("--chat-template-file", args->chat_template_file,
                  "with --chat: a .jinja chat template to use instead of the model's");
  sub->add_option("--temp", args->sampling.temperature, "temperature (default 0: greedy decoding)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--top-k", args->sampling.top_k, "keep the K most likely tokens (default 40; 0: off)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--top-p", args->sampling.top_p, "keep the most likely tokens up to this probability mass (default 0.95; 1: off)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--min-p", args->sampling.min_p, "drop tokens below P times the top token's probability (default 0.05; 0: off)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--repeat-penalty", args->sampling.repeat_penalty, "penalty for tokens among the last --repeat-last-n (default 1: off)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--repeat-last-n", args->sampling.repeat_last_n, "tokens the repeat penalty looks back over (default 64; 0: off)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--seed", args->seed, "seed of the random draws (default: random, printed to stderr)");
  sub->add_option("--dump-logprobs", args->dump_logprobs,
                  "debugging aid: write JSON {tokens, n_prompt, logprobs} to FILE, logprobs[i] being "
                  "the log-softmax over the vocabulary after tokens[0..i]");
  add_kv_cache_options(sub, args->kv);
  add_lora_option(sub, args->lora);
  sub->add_option("--spec", args->spec, "speculative decoding with drafts from n-gram lookup in the context: ngram");
  sub->add_option("--draft", args->draft, "speculative decoding with this draft model (same vocabulary)");
  sub->add_option("--draft-max", args->spec_params.draft_max,
                  "drafted tokens per verify pass (default 5, at most " + std::to_string(spec::kMaxDraftTokens) + ")")
      ->check(CLI::Range(int64_t{1}, spec::kMaxDraftTokens));
  sub->add_option("--draft-min", args->spec_params.draft_min, "fewer drafted tokens than this: a plain decode step (default 1)")
      ->check(CLI::PositiveNumber);
  return {sub, [args] {
            if (args->prompt.empty())
              throw InputError("optiq generate", std::nullopt, "the prompt is empty (-p TEXT)");
            const bool speculative = !args->spec.empty() || !args->draft.empty();
            if (!args->spec.empty() && args->spec != "ngram")
              throw InputError("--spec", std::nullopt, "\"" + args->spec + "\" is not a drafting method (ngram)");
            if (!args->spec.empty() && !args->draft.empty())
              throw InputError("--spec", std::nullopt, "give --spec ngram or --draft MODEL, not both");
            if (speculative && args->sampling.temperature > 0)
              throw InputError("--draft", std::nullopt, "speculative decoding runs at temperature 0 only, so far");
            if (speculative && !args->dump_logprobs.empty())
              throw InputError("--dump-logprobs", std::nullopt, "not available with speculative decoding");
            engine::set_num_threads(args->threads);
            const RunnableModel runnable = load_runnable_model(args->model, args->lora);
            const std::string& path = runnable.path;
            const engine::Model& model = runnable.model;
            const Tokenizer& tok = runnable.tok;
            const int64_t n_ctx = args->n_ctx > 0 ? args->n_ctx : std::min<int64_t>(model.hp.n_ctx_train, 4096);
            std::vector<int32_t> ids = tok.encode(args->chat ? chat_prompt(load_chat_template(path, args->chat_template_file, tok), tok, args->system, args->prompt) : args->prompt,
                                                  /*add_special=*/true, /*parse_special=*/true);
            const size_t n_prompt = ids.size();
            if (static_cast<int64_t>(n_prompt) > n_ctx)
              throw InputError("optiq generate", std::nullopt,
                               "the prompt is " + std::to_string(n_prompt) + " tokens, longer than the context of " +
                                   std::to_string(n_ctx) + " (-c)");

            const int64_t V = model.hp.n_vocab;
            engine::KVCache cache = engine::make_kv_cache(model, n_ctx, kv_cache_config(args->kv, model));
            const bool dump = !args->dump_logprobs.empty();
            std::vector<float> logits(static_cast<size_t>(n_prompt) * V);
            engine::forward(model, cache, ids, /*all_logits=*/dump, logits.data());
            std::vector<std::vector<float>> logprobs;  // [evaluated positions][n_vocab]
            auto keep = [&](const float* row) {
              std::vector<float> lp(static_cast<size_t>(V));
              engine::log_softmax(row, V, lp.data());
              logprobs.push_back(std::move(lp));
            };
            if (dump)
              for (size_t t = 0; t < n_prompt; ++t) keep(logits.data() + t * V);
            const float* last = logits.data() + (dump ? (n_prompt - 1) * V : 0);

            engine::SamplingParams sampling = args->sampling;
            if (sampling.temperature > 0) {
              sampling.seed = args->seed ? *args->seed : engine::random_seed();
              std::fprintf(stderr, "optiq: seed %u\n", sampling.seed);
            }
            engine::Sampler sampler(sampling, V);
            for (const int32_t id : ids) sampler.accept(id);

            const std::string prompt_text = tok.decode(ids, /*skip_special=*/true);
            size_t printed = 0;  // bytes of the continuation written so far
            // Writes what the tokens added to `ids` completed of the text.
            const auto print_new = [&] {
              const std::string full = tok.decode(ids, /*skip_special=*/true);
              if (full.size() < prompt_text.size()) return;
              const std::string cont = full.substr(prompt_text.size());
              const size_t upto = complete_utf8_prefix(cont);
              if (upto > printed) {
                std::fwrite(cont.data() + printed, 1, upto - printed, stdout);
                std::fflush(stdout);
                printed = upto;
              }
            };
            if (speculative) {
              std::optional<RunnableModel> draft_model;
              std::optional<spec::DraftModel> drafter_model;
              spec::Drafter drafter = [](std::span<const int32_t> history, int64_t max_tokens) {
                return spec::ngram_draft(history, max_tokens);
              };
              if (!args->draft.empty()) {
                draft_model.emplace(load_runnable_model(args->draft));
                check_same_vocabulary(tok, draft_model->tok, draft_model->path);
                drafter_model.emplace(draft_model->model, std::min(n_ctx, draft_model->model.hp.n_ctx_train));
                drafter = [&](std::span<const int32_t> history, int64_t max_tokens) {
                  return drafter_model->propose(history, max_tokens);
                };
              }
              const int32_t stops[2] = {tok.eos, tok.eot};
              const spec::SpecStats st = spec::speculative_greedy(
                  model, cache, ids, std::span<const float>(last, static_cast<size_t>(V)), drafter, args->spec_params,
                  args->n_predict, stops, [&](int32_t) {
                    print_new();
                    return true;
                  });
              std::fprintf(stderr, "\noptiq: speculative decoding: %lld verify passes, %lld drafted tokens, %lld accepted (%.0f%%)\n",
                           static_cast<long long>(st.passes), static_cast<long long>(st.drafted),
                           static_cast<long long>(st.accepted),
                           st.drafted ? 100.0 * static_cast<double>(st.accepted) / static_cast<double>(st.drafted) : 0.0);
            }
            for (int64_t i = 0; i < (speculative ? 0 : args->n_predict); ++i) {
              const int32_t next = sampler.sample(last);
              if (next == tok.eos || next == tok.eot) break;
              ids.push_back(next);
              sampler.accept(next);
              print_new();
              if (i + 1 == args->n_predict) break;
              if (cache.n_past >= cache.n_ctx) {
                std::fprintf(stderr, "\noptiq: the context of %lld tokens is full\n", static_cast<long long>(n_ctx));
                break;
              }
              const int32_t one[1] = {next};
              engine::forward(model, cache, one, false, logits.data());
              last = logits.data();
              if (dump) keep(last);
            }
            // Whatever a trailing incomplete character left unprinted.
            const std::string full = tok.decode(ids, true);
            if (full.size() > prompt_text.size() + printed)
              std::fwrite(full.data() + prompt_text.size() + printed, 1, full.size() - prompt_text.size() - printed, stdout);
            std::printf("\n");

            if (dump) {
              nlohmann::json j;
              j["tokens"] = ids;
              j["n_prompt"] = n_prompt;
              j["logprobs"] = logprobs;
              const std::string text = j.dump();
              AtomicFile out(args->dump_logprobs);
              out.write(text.data(), text.size());
              out.commit();
            }
            return 0;
          }};
}

}  // namespace optiq::cli
