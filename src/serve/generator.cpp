#include "serve/generator.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "engine/sampling.h"
#include "model/chat_prompt.h"
#include "serve/api_errors.h"
#include "serve/stop_scanner.h"
#include "serve/tool_prompt.h"
#include "util/error.h"

namespace optiq::serve {

SlotLease::~SlotLease() { gen_->release(index_); }

Generator::Generator(const engine::Model& model, const Tokenizer& tok, std::optional<ChatTemplate> tmpl,
                     const Options& options)
    : model_(model), tok_(tok), tmpl_(std::move(tmpl)), options_(options) {
  for (int i = 0; i < options_.n_slots; ++i) caches_.push_back(engine::make_kv_cache(model_, options_.n_ctx, options_.kv));
  busy_.assign(caches_.size(), false);
  tokens_.resize(caches_.size());
  adapter_keys_.resize(caches_.size());
  held_positions_.assign(caches_.size(), 0);
  for (const engine::LayerKVCache& layer : caches_.front().layers)
    bytes_per_position_ += layer.k_row_bytes() + layer.v_row_bytes();
  for (const engine::KVCache& cache : caches_) kv_bytes_total_ += cache.bytes();
  can_rewind_ = options_.prompt_cache;
  // Cutting a cache back to a prefix (n_past = p) is exact for plain and block-quantized rows:
  // each position's row depends on its own token and the positions before it only, and the
  // rows past p are overwritten as the new tokens arrive. Not for TurboQuant sides: their key
  // statistics come from the first key_stats positions, whatever came after the prefix
  // included, and their window of recent f16 rows has already dropped rows that a query just
  // past the prefix reads in f16 on a fresh prefill. A TurboQuant cache therefore always
  // prefills the whole prompt.
  for (const engine::KVCache& cache : caches_)
    for (const engine::LayerKVCache& layer : cache.layers)
      if (layer.has_turbo()) can_rewind_ = false;
  if (tmpl_) {
    for (const bool tools : {false, true}) {
      const std::string probe = "optiq-probe-system-text";
      ChatRequest request;
      request.messages = {{{"role", "system"}, {"content", probe}}, {{"role", "user"}, {"content", "hi"}}};
      if (tools) request.tools = nlohmann::ordered_json::array();
      request.add_generation_prompt = true;
      try {
        system_role_[tools] = render_chat(*tmpl_, request).find(probe) != std::string::npos;
      } catch (const InputError&) {
        system_role_[tools] = false;
      }
    }
  }
  pieces_.resize(static_cast<size_t>(model_.hp.n_vocab));
  for (int32_t id = 0; id < std::min<int64_t>(tok_.n_tokens(), model_.hp.n_vocab); ++id)
    if (!tok_.tokens[static_cast<size_t>(id)].special) pieces_[static_cast<size_t>(id)] = tok_.token_to_piece(id);
}

std::vector<int32_t> Generator::tokenize_prompt(GenerationRequest& req) const {
  return tokenize(render_prompt(req), /*add_special=*/true, /*parse_special=*/true);
}

std::vector<int32_t> Generator::tokenize(const std::string& text, bool add_special, bool parse_special) const {
  std::lock_guard lock(tokenizer_mutex_);
  return tok_.encode(text, add_special, parse_special);
}

std::string Generator::detokenize(const std::vector<int32_t>& ids) const {
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= tok_.n_tokens())
      throw ApiError(400, "tokens[" + std::to_string(i) + "] = " + std::to_string(ids[i]) + " is outside the vocabulary of " +
                              std::to_string(tok_.n_tokens()) + " tokens",
                     "tokens");
  std::lock_guard lock(tokenizer_mutex_);
  return tok_.decode(ids, /*skip_special=*/false);
}

std::string Generator::render_prompt(GenerationRequest& req) const {
  std::string text = req.prompt;
  if (req.chat) {
    if (!tmpl_)
      throw ApiError(400, "the model has no chat template; use /v1/completions, or start the server with --chat-template-file");
    try {
      const bool tools = !req.tools.is_null();
      const TemplatedChat chat = prepare_for_template(chat_template_source(*tmpl_, tools), req.messages, req.tools, system_role_[tools]);
      text = chat_prompt(*tmpl_, tok_, chat.messages, chat.tools, req.template_vars);
    } catch (const InputError& e) {
      throw ApiError(400, std::string("the chat template failed on these messages: ") + e.what(), "messages");
    }
    const std::string_view ending(text.data(), text.find_last_not_of(" \n") + 1);
    req.output_format.reasoning_open = ending.size() >= 7 && ending.substr(ending.size() - 7) == "<think>";
  }
  return text;
}

void Generator::check_context(int64_t n_prompt, std::optional<int64_t> max_tokens, const char* prompt_param) const {
  const int64_t n_ctx = options_.n_ctx;
  if (n_prompt == 0) throw ApiError(400, "the prompt has no tokens", prompt_param);
  if (n_prompt > n_ctx)
    throw ApiError(400, "the prompt is " + std::to_string(n_prompt) + " tokens, longer than the context of " +
                            std::to_string(n_ctx) + " tokens",
                   prompt_param, "context_length_exceeded");
  if (max_tokens && n_prompt + *max_tokens > n_ctx)
    throw ApiError(400, "the context is " + std::to_string(n_ctx) + " tokens, but " + std::to_string(n_prompt) +
                            " prompt tokens plus max_tokens " + std::to_string(*max_tokens) + " make " +
                            std::to_string(n_prompt + *max_tokens),
                   "max_tokens", "context_length_exceeded");
}

int64_t Generator::reusable_prefix(size_t slot, std::span<const int32_t> prompt, const std::string& adapters) const {
  if (!can_rewind_ || adapter_keys_[slot] != adapters) return 0;
  const std::vector<int32_t>& held = tokens_[slot];
  const auto n = static_cast<int64_t>(std::mismatch(held.begin(), held.end(), prompt.begin(), prompt.end()).first - held.begin());
  // The prompt's last token always runs: its logits choose the first generated token.
  return std::min(n, static_cast<int64_t>(prompt.size()) - 1);
}

std::string Generator::adapter_key(const std::vector<AdapterUse>& adapters) {
  std::string key;
  for (const AdapterUse& a : adapters) key += std::to_string(a.adapter->id) + ":" + std::to_string(a.scale) + ";";
  return key;
}

std::unique_ptr<SlotLease> Generator::acquire_slot(std::span<const int32_t> prompt, const std::string& adapters) {
  std::unique_lock lock(slots_mutex_);
  const auto any_free = [&] { return std::find(busy_.begin(), busy_.end(), false) != busy_.end(); };
  if (!any_free() && waiting_ >= options_.max_waiting)
    throw ApiError(503, "the server is busy: all " + std::to_string(busy_.size()) + " slots are taken and " +
                            std::to_string(waiting_) + " requests are waiting; try again later");
  ++waiting_;
  const bool got_one = slot_freed_.wait_for(lock, options_.slot_wait, any_free);
  --waiting_;
  if (!got_one)
    throw ApiError(503, "all " + std::to_string(busy_.size()) + " slots stayed busy for " +
                            std::to_string(options_.slot_wait.count()) + " s; try again later (or start with a larger --parallel)");
  size_t best = busy_.size();
  int64_t best_cached = -1;
  for (size_t i = 0; i < busy_.size(); ++i) {
    if (busy_[i]) continue;
    const int64_t cached = reusable_prefix(i, prompt, adapters);
    if (cached > best_cached) best = i, best_cached = cached;
  }
  busy_[best] = true;
  return std::make_unique<SlotLease>(*this, best, std::max<int64_t>(best_cached, 0));
}

void Generator::reuse_prefix(SlotLease& slot, std::span<const int32_t> prompt) {
  std::lock_guard lock(slots_mutex_);
  slot.cached_ = std::max<int64_t>(reusable_prefix(slot.index(), prompt, adapter_keys_[slot.index()]), 0);
}

void Generator::release(size_t index) {
  {
    std::lock_guard lock(slots_mutex_);
    busy_[index] = false;
  }
  slot_freed_.notify_one();
}

SlotGauges Generator::slot_gauges() const {
  std::lock_guard lock(slots_mutex_);
  SlotGauges g;
  g.busy = static_cast<int>(std::count(busy_.begin(), busy_.end(), true));
  g.total = options_.n_slots;
  g.waiting = waiting_;
  for (const int64_t n : held_positions_) g.kv_bytes_in_use += static_cast<uint64_t>(n) * bytes_per_position_;
  g.kv_bytes_total = kv_bytes_total_;
  std::lock_guard batch_lock(batch_mutex_);
  g.decode_batches = batches_;
  g.decode_batch_rows = batch_rows_;
  return g;
}

std::string Generator::decode(const std::vector<int32_t>& ids) const {
  std::lock_guard lock(tokenizer_mutex_);
  return tok_.decode(ids, /*skip_special=*/true);
}

int32_t Generator::sample_constrained(engine::Sampler& sampler, const float* logits,
                                      const constrain::JsonConstraint& constraint, const std::string& text) const {
  using State = constrain::JsonConstraint::State;
  std::string candidate;  // text + a token's piece; one buffer for the whole vocabulary
  const auto allowed = [&](int32_t id) {
    if (id == tok_.eos || id == tok_.eot) return constraint.check(text) == State::Complete;
    const std::string& piece = pieces_[static_cast<size_t>(id)];
    if (piece.empty()) return false;
    candidate.assign(text).append(piece);
    return constraint.check(candidate) != State::Invalid;
  };
  const int32_t first = sampler.sample(logits);
  if (allowed(first)) return first;
  const auto n_vocab = static_cast<size_t>(model_.hp.n_vocab);
  std::vector<float> masked(logits, logits + n_vocab);
  bool any = false;
  for (size_t id = 0; id < n_vocab; ++id) {
    if (allowed(static_cast<int32_t>(id))) any = true;
    else masked[id] = -std::numeric_limits<float>::infinity();
  }
  return any ? sampler.sample(masked.data()) : -1;
}

TokenLogprob Generator::token_logprob(const float* logits, int32_t id, int top) const {
  const auto n_vocab = static_cast<size_t>(model_.hp.n_vocab);
  const float max = *std::max_element(logits, logits + n_vocab);
  double sum = 0.0;
  for (size_t i = 0; i < n_vocab; ++i) sum += std::exp(static_cast<double>(logits[i] - max));
  const float log_z = max + static_cast<float>(std::log(sum));  // logsumexp of the row
  std::vector<int32_t> order(n_vocab);
  std::iota(order.begin(), order.end(), 0);
  const auto n_top = std::min(static_cast<size_t>(top), n_vocab);
  std::partial_sort(order.begin(), order.begin() + static_cast<ptrdiff_t>(n_top), order.end(),
                    [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  std::lock_guard lock(tokenizer_mutex_);
  TokenLogprob out{tok_.decode({id}), logits[id] - log_z, {}};
  for (size_t i = 0; i < n_top; ++i) out.top.emplace_back(tok_.decode({order[i]}), logits[order[i]] - log_z);
  return out;
}

void Generator::record_tokens(size_t slot, std::span<const int32_t> tokens) {
  // Recorded only once they are in the cache: a pass that throws leaves the slot's tokens a
  // prefix of what its rows hold, which is all that reuse needs.
  tokens_[slot].insert(tokens_[slot].end(), tokens.begin(), tokens.end());
  std::lock_guard lock(slots_mutex_);
  held_positions_[slot] = caches_[slot].n_past;
}

void Generator::prefill(size_t slot, std::span<const int32_t> tokens, float* logits, engine::LowRankDeltas deltas) {
  for (size_t done = 0; done < tokens.size();) {
    const auto chunk = tokens.subspan(done, std::min<size_t>(kPrefillChunk, tokens.size() - done));
    if (deltas.empty()) {
      engine_.run([&] { engine::forward(model_, caches_[slot], chunk, /*all_logits=*/false, logits); });
    } else {
      engine::KVCache* const cache[1] = {&caches_[slot]};
      const std::span<const int32_t> one_chunk[1] = {chunk};
      const engine::LowRankDeltas set[1] = {deltas};
      engine_.run([&] { engine::forward_batch(model_, cache, one_chunk, logits, set); });
    }
    record_tokens(slot, chunk);
    done += chunk.size();
  }
}

Generator::Decoding::Decoding(Generator& gen) : gen_(gen) {
  std::lock_guard lock(gen_.batch_mutex_);
  ++gen_.decoding_;
}

Generator::Decoding::~Decoding() {
  {
    std::lock_guard lock(gen_.batch_mutex_);
    --gen_.decoding_;
  }
  gen_.batch_changed_.notify_all();  // the others may have been waiting for this one's step
}

void Generator::decode_step(size_t slot, int32_t token, float* logits, engine::LowRankDeltas deltas) {
  DecodeStep mine{slot, token, deltas, logits, false, nullptr};
  std::unique_lock lock(batch_mutex_);
  pending_.push_back(&mine);
  batch_changed_.notify_all();
  const auto deadline = std::chrono::steady_clock::now() + options_.gather_window;
  while (!mine.done) {
    const bool everyone_in = static_cast<int>(pending_.size()) >= decoding_;
    if (!batch_running_ && !pending_.empty() && (everyone_in || std::chrono::steady_clock::now() >= deadline)) {
      run_decode_batch(lock);
    } else if (batch_running_ || everyone_in) {
      batch_changed_.wait(lock);
    } else {
      batch_changed_.wait_until(lock, deadline);
    }
  }
  if (mine.error) std::rethrow_exception(mine.error);
}

void Generator::run_decode_batch(std::unique_lock<std::mutex>& lock) {
  std::vector<DecodeStep*> batch;
  batch.swap(pending_);
  batch_running_ = true;
  lock.unlock();
  std::vector<engine::KVCache*> caches;
  std::vector<std::span<const int32_t>> tokens;
  std::vector<engine::LowRankDeltas> deltas;  // [batch], or empty when no step has adapters
  for (DecodeStep* step : batch) {
    caches.push_back(&caches_[step->slot]);
    tokens.emplace_back(&step->token, 1);
    deltas.push_back(step->deltas);
  }
  if (std::all_of(deltas.begin(), deltas.end(), [](engine::LowRankDeltas d) { return d.empty(); })) deltas.clear();
  const auto n_vocab = static_cast<size_t>(model_.hp.n_vocab);
  std::vector<float> logits(batch.size() * n_vocab);  // [batch, n_vocab]
  std::exception_ptr error;
  try {
    engine_.run([&] { engine::forward_batch(model_, caches, tokens, logits.data(), deltas); });
  } catch (...) {
    error = std::current_exception();
  }
  if (!error) {
    for (size_t i = 0; i < batch.size(); ++i) {
      std::copy_n(logits.data() + i * n_vocab, n_vocab, batch[i]->logits);
      record_tokens(batch[i]->slot, tokens[i]);
    }
  }
  lock.lock();
  for (DecodeStep* step : batch) {
    step->error = error;
    step->done = true;
  }
  batch_running_ = false;
  ++batches_;
  batch_rows_ += batch.size();
  batch_changed_.notify_all();
}

GenerationResult Generator::generate(SlotLease& slot, const GenerationRequest& req, std::vector<int32_t> ids,
                                     const TextSink& on_text) {
  const size_t index = slot.index();
  engine::KVCache& cache = caches_[index];
  GenerationResult result;
  result.prompt_tokens = static_cast<int64_t>(ids.size());
  result.cached_tokens = slot.cached_tokens();
  cache.n_past = result.cached_tokens;  // rewound to the shared prefix (see the constructor)
  tokens_[index].resize(static_cast<size_t>(result.cached_tokens));
  {
    std::lock_guard lock(slots_mutex_);
    held_positions_[index] = cache.n_past;
    adapter_keys_[index] = adapter_key(req.adapters);
  }
  std::vector<engine::LowRankDelta> deltas;  // the request's adapters at its scales
  for (const AdapterUse& use : req.adapters)
    for (engine::LowRankDelta d : use.adapter->deltas) {
      d.scale *= use.scale;
      deltas.push_back(d);
    }
  const int64_t max_tokens = req.max_tokens.value_or(options_.n_ctx - result.prompt_tokens);

  engine::SamplingParams sampling = req.sampling;
  if (sampling.temperature > 0) sampling.seed = req.seed ? *req.seed : engine::random_seed();
  engine::Sampler sampler(sampling, model_.hp.n_vocab);
  for (const int32_t id : ids) sampler.accept(id);

  std::vector<float> logits(static_cast<size_t>(model_.hp.n_vocab));  // [n_vocab] of the last position
  prefill(index, std::span(ids).subspan(static_cast<size_t>(result.cached_tokens)), logits.data(), deltas);
  const Decoding decoding(*this);
  // The continuation is the decoded whole minus the decoded prompt, as optiq generate prints it,
  // so a token that merges with the prompt's end (SentencePiece spaces) reads the same.
  const std::string prompt_text = decode(ids);
  StopScanner scanner(req.stop);
  std::string continuation;
  if (req.top_logprobs) result.logprobs.emplace();
  size_t logprobs_sent = 0;  // of *result.logprobs, those already given to on_text
  // Log-probabilities wait for text to go with, except at the end (`last`).
  const auto send = [&](const std::string& piece, bool last) {
    std::span<const TokenLogprob> logprobs;
    if (result.logprobs) logprobs = std::span(*result.logprobs).subspan(logprobs_sent);
    if (piece.empty() && (!last || logprobs.empty())) return true;
    if (result.logprobs) logprobs_sent = result.logprobs->size();
    result.text += piece;
    return on_text(piece, logprobs);
  };

  const constrain::JsonConstraint* constraint = req.constraint.get();
  std::string constrained_text;  // the generated tokens' pieces, what the constraint reads
  result.finish = FinishReason::Length;
  for (int64_t i = 0; i < max_tokens; ++i) {
    const int32_t next = constraint ? sample_constrained(sampler, logits.data(), *constraint, constrained_text)
                                    : sampler.sample(logits.data());
    if (next < 0 || next == tok_.eos || next == tok_.eot) {
      result.finish = FinishReason::EndOfText;
      break;
    }
    if (constraint) constrained_text += pieces_[static_cast<size_t>(next)];
    if (result.logprobs) result.logprobs->push_back(token_logprob(logits.data(), next, *req.top_logprobs));
    ids.push_back(next);
    result.last_token_at = std::chrono::steady_clock::now();
    if (!result.first_token_at) result.first_token_at = result.last_token_at;
    sampler.accept(next);
    ++result.completion_tokens;
    const std::string full = decode(ids);
    if (full.size() >= prompt_text.size()) continuation = full.substr(prompt_text.size());
    if (!send(scanner.update(continuation), /*last=*/false)) {
      result.finish = FinishReason::Cancelled;
      return result;
    }
    if (scanner.stopped()) {
      result.finish = FinishReason::StopSequence;
      result.stop_sequence = scanner.matched();
      if (!send("", /*last=*/true)) result.finish = FinishReason::Cancelled;
      break;
    }
    if (constraint && constraint->finished(constrained_text)) {
      result.finish = FinishReason::EndOfText;
      break;
    }
    if (i + 1 == max_tokens || cache.n_past >= cache.n_ctx) break;
    decode_step(index, next, logits.data(), deltas);
  }
  const bool flushed = result.finish == FinishReason::StopSequence || result.finish == FinishReason::Cancelled;
  if (!flushed && !send(scanner.finish(continuation), /*last=*/true)) result.finish = FinishReason::Cancelled;
  if (req.chat) {
    result.output = parse_model_output(result.text, req.output_format);
    if (!result.output.calls.empty() && result.finish == FinishReason::EndOfText) result.finish = FinishReason::ToolCalls;
  }
  return result;
}

}  // namespace optiq::serve
