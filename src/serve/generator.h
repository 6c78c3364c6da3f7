// optiq's engine behind the server: one loaded model, its tokenizer and chat template, and
// --parallel N slots, each a KV cache of n_ctx positions that one request holds at a time.
//
// Prompt cache: each slot remembers the tokens its KV cache holds (the last request's prompt and
// the generated tokens that went through the model). A request takes the free slot whose tokens
// share the longest prefix with its prompt, keeps that prefix's keys and values and prefills
// only the rest, as llama.cpp's server does with cache_prompt. Multi-turn chats, whose prompt
// grows by a turn each time, thus prefill only the new turn.
//
// Continuous batching: each request runs on its own thread, but its decode steps are not its
// own forward passes. A step submits (slot, token) and waits; once every request that is
// decoding has submitted (or Options::gather_window after the first did), one of the waiting
// threads hands them all to the engine as one engine::forward_batch, each weight read once for
// all slots, and gives each its logits. Prefills take the engine between steps in chunks of
// kPrefillChunk tokens, so a long prompt arriving holds running streams up by one chunk at a
// time. Steps and chunks all run on one EngineThread, in the order they were handed to it. The
// tokenizer (whose cache is not thread-safe) has a mutex of its own. A request that finds every
// slot busy waits for one, at most `slot_wait`, then gets an ApiError 503.
#pragma once

#include <chrono>
#include <condition_variable>
#include <exception>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/model.h"
#include "model/chat_template.h"
#include "model/tokenizer.h"
#include "serve/engine_thread.h"
#include "serve/generation_request.h"
#include "serve/metrics.h"

namespace optiq::serve {

class Generator;

// One slot, held from before the prompt runs until the response is written; freed on
// destruction. `cached`: the prompt's leading tokens whose keys and values the slot already
// holds (the prompt cache), fixed when the slot is taken so that a stream can report it first.
class SlotLease {
 public:
  SlotLease(Generator& gen, size_t index, int64_t cached) : gen_(&gen), index_(index), cached_(cached) {}
  SlotLease(const SlotLease&) = delete;
  SlotLease& operator=(const SlotLease&) = delete;
  ~SlotLease();
  size_t index() const { return index_; }
  int64_t cached_tokens() const { return cached_; }

 private:
  friend class Generator;
  Generator* gen_;
  size_t index_;
  int64_t cached_;
};

class Generator {
 public:
  struct Options {
    int64_t n_ctx = 0;  // positions per slot
    int n_slots = 1;
    engine::KVCacheConfig kv;
    std::chrono::seconds slot_wait{600};
    // Requests that may wait for a slot at once; one more gets an ApiError 503 at once (the
    // queue is full) instead of waiting.
    int max_waiting = 256;
    // Reuse the prefix a slot holds (the file comment). A prefix's last token then runs in a
    // smaller batch than in a whole prefill, whose attention takes other kernels (ops.h: sgemm
    // for a batch, dot products for one token), so logits differ by float roundoff and a long
    // greedy generation can part from a fresh one at a near tie, as llama.cpp says of its
    // cache_prompt. false: every prompt is prefilled whole.
    bool prompt_cache = true;
    // How long the first decode step of a round waits for the other decoding requests' steps.
    // Short: a request whose client reads slowly must not hold the others up for long.
    std::chrono::microseconds gather_window{2000};
  };
  // `tmpl` empty: the model has no chat template, and chat requests get a 400.
  Generator(const engine::Model& model, const Tokenizer& tok, std::optional<ChatTemplate> tmpl, const Options& options);

  // The prompt's tokens: a chat request rendered through the chat template (opened assistant
  // turn; tools, calls and results reshaped for it by prepare_for_template), a completion's
  // text as it is; BOS as the vocabulary asks, special tokens parsed, as `optiq generate` does.
  // Sets req.output_format.reasoning_open when the rendered prompt ends inside <think>.
  // ApiError 400 when there is no template or the template raises.
  std::vector<int32_t> tokenize_prompt(GenerationRequest& req) const;
  // tokenize_prompt's two halves: the prompt's text (what llama-server's /apply-template
  // returns), and text to ids (add_special: BOS/EOS as the vocabulary asks; parse_special:
  // special tokens written in the text become their ids).
  std::string render_prompt(GenerationRequest& req) const;
  std::vector<int32_t> tokenize(const std::string& text, bool add_special, bool parse_special) const;
  // The text of `ids` (special tokens written out), or ApiError 400 naming the first id outside
  // the vocabulary.
  std::string detokenize(const std::vector<int32_t>& ids) const;
  // ApiError 400 when the prompt has no tokens, or (code "context_length_exceeded") when the
  // prompt, or the prompt plus max_tokens, does not fit in a slot's context. `prompt_param`: the field that holds the
  // prompt ("messages" or "prompt"), for the error's param.
  void check_context(int64_t n_prompt, std::optional<int64_t> max_tokens, const char* prompt_param) const;

  // A free slot for `prompt`, waiting up to Options::slot_wait for one (ApiError 503 after
  // that, or at once when Options::max_waiting requests wait already): of the free slots, the
  // one that holds the longest prefix of the prompt (the lowest index on ties). Only tokens
  // computed with the same adapters count (`adapters`: adapter_key of the request's).
  std::unique_ptr<SlotLease> acquire_slot(std::span<const int32_t> prompt, const std::string& adapters = "");
  // What identifies a request's adapters for the prompt cache: ids (never reused) and scales.
  static std::string adapter_key(const std::vector<AdapterUse>& adapters);

  // The slot's reusable prefix for a next prompt in the same lease (a tool round: the previous
  // prompt and reply are its start), as acquire_slot finds it for a new one.
  void reuse_prefix(SlotLease& slot, std::span<const int32_t> prompt);

  // Called with each new piece of visible text and the log-probabilities of the tokens generated
  // since the previous call (empty unless requested; the last call may have text "" to flush
  // them); returning false cancels the generation.
  using TextSink = std::function<bool(const std::string& text, std::span<const TokenLogprob> logprobs)>;
  // Runs the request in the leased slot: prefill of the prompt past the slot's cached prefix
  // (SlotLease::cached_tokens), then sampling until EOS/EOT, a stop sequence, max_tokens or a
  // full context. At temperature 0 the tokens are `optiq generate`'s (the same greedy sampler
  // over the same prompt; a reused prefix holds the keys and values a prefill computes).
  GenerationResult generate(SlotLease& slot, const GenerationRequest& req, std::vector<int32_t> prompt,
                            const TextSink& on_text);

  // Prompt tokens per prefill pass (llama.cpp's server uses micro-batches of 512 too). A prompt
  // longer than this is prefilled in several passes, whose roundoff differs from one pass's.
  static constexpr int64_t kPrefillChunk = 512;
  int64_t n_ctx() const { return options_.n_ctx; }
  int n_slots() const { return options_.n_slots; }
  // Busy, configured and awaited slots, and the bytes of K/V rows the caches hold (a free slot's
  // cached prompt included) against all they have allocated, for /metrics.
  SlotGauges slot_gauges() const;
  const engine::KVCache& cache(size_t slot) const { return caches_[slot]; }

 private:
  friend class SlotLease;
  void release(size_t index);
  std::string decode(const std::vector<int32_t>& ids) const;
  // The next token under req.constraint: the sampler's choice when the constraint allows it,
  // else the sampler's choice among the tokens it allows (every token checked); -1 when it
  // allows none. `text`: the generated tokens' pieces so far.
  int32_t sample_constrained(engine::Sampler& sampler, const float* logits, const constrain::JsonConstraint& constraint,
                             const std::string& text) const;
  // Token `id`'s log-probability under `logits` [n_vocab], and the `top` most likely tokens'.
  TokenLogprob token_logprob(const float* logits, int32_t id, int top) const;
  // Prefills `tokens` into slot `slot` after its cached tokens, in chunks of kPrefillChunk, and
  // records them there; logits [n_vocab] of the last one.
  void prefill(size_t slot, std::span<const int32_t> tokens, float* logits, engine::LowRankDeltas deltas);
  // One decode step of slot `slot`, batched with the other decoding slots' (the file comment);
  // logits [n_vocab] of `token`.
  void decode_step(size_t slot, int32_t token, float* logits, engine::LowRankDeltas deltas);
  struct DecodeStep {
    size_t slot = 0;
    int32_t token = 0;
    engine::LowRankDeltas deltas;  // the request's adapters, scales applied
    float* logits = nullptr;  // [n_vocab], written by whichever thread runs the batch
    bool done = false;
    std::exception_ptr error;
  };
  // Runs every pending step as one batch (batch_mutex_ held on entry and exit, released while
  // the engine runs).
  void run_decode_batch(std::unique_lock<std::mutex>& lock);
  // The slot's cache now holds `tokens` after what it held: record them (for the prompt cache)
  // and its position count (for /metrics).
  void record_tokens(size_t slot, std::span<const int32_t> tokens);
  // Counts a request as decoding from construction to destruction (decode_step waits for the
  // steps of all decoding requests).
  class Decoding {
   public:
    explicit Decoding(Generator& gen);
    Decoding(const Decoding&) = delete;
    Decoding& operator=(const Decoding&) = delete;
    ~Decoding();

   private:
    Generator& gen_;
  };
  // Leading tokens of `prompt` that slot `slot` can reuse with adapters `adapters` (adapter_key;
  // slots_mutex_ held).
  int64_t reusable_prefix(size_t slot, std::span<const int32_t> prompt, const std::string& adapters) const;

  const engine::Model& model_;
  const Tokenizer& tok_;
  std::optional<ChatTemplate> tmpl_;
  Options options_;

  EngineThread engine_;                 // runs every forward pass, one at a time (see the file comment)
  mutable std::mutex batch_mutex_;      // guards the six members below
  std::condition_variable batch_changed_;  // a step was submitted or finished, or a request stopped decoding
  std::vector<DecodeStep*> pending_;    // steps submitted for the next batch
  int decoding_ = 0;                    // requests past their prefill (Decoding)
  bool batch_running_ = false;          // a thread is running a batch now
  uint64_t batches_ = 0, batch_rows_ = 0;  // decode batches run, and the steps they held
  mutable std::mutex tokenizer_mutex_;  // Tokenizer::encode fills a shared cache
  mutable std::mutex slots_mutex_;
  std::condition_variable slot_freed_;
  std::vector<engine::KVCache> caches_;  // [n_slots]
  std::vector<bool> busy_;               // [n_slots]
  int waiting_ = 0;                      // requests inside acquire_slot, waiting for a slot
  // [n_slots] positions each cache holds (its n_past, mirrored here under slots_mutex_ so that
  // /metrics never reads a cache that a forward pass is writing).
  std::vector<int64_t> held_positions_;
  uint64_t bytes_per_position_ = 0;  // K and V row bytes of one position over all layers
  uint64_t kv_bytes_total_ = 0;      // K and V storage of all slots, allocated up front
  // [n_slots] the tokens at positions 0 .. n_past-1 of each slot's cache; changed only by the
  // slot's holder, read by acquire_slot under slots_mutex_ for free slots only.
  std::vector<std::vector<int32_t>> tokens_;
  // [n_slots] adapter_key of the adapters those tokens' keys and values were computed with.
  std::vector<std::string> adapter_keys_;
  bool can_rewind_ = true;  // Options::prompt_cache, and the caches can be cut back (constructor)
  // [n_vocab] each token's text (token_to_piece), what constrained decoding appends to check it;
  // empty for special tokens and ids past the tokenizer's, which a constraint never allows.
  std::vector<std::string> pieces_;
  // Whether the chat template (without tools, with tools) renders a system message: tried once
  // on a probe conversation; false when it leaves the text out or raises (prepare_for_template
  // then merges the system text into the next message).
  bool system_role_[2] = {true, true};
};

}  // namespace optiq::serve
