#include "eval/eval_model.h"

#include <algorithm>
#include <cmath>

#include "engine/ops.h"
#include "eval/perplexity.h"
#include "model/chat_prompt.h"
#include "model/model_source.h"
#include "util/error.h"

namespace optiq::eval {
namespace {

int32_t argmax(const float* logits, int64_t n) {
  return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
}

}  // namespace

EvalModel::EvalModel(const std::string& path, int64_t n_ctx)
    : path_(path), model_(engine::load_model(open_model_source(path))), tok_(load_tokenizer(path)) {
  if (tok_.n_tokens() > model_.hp.n_vocab)
    throw InputError(path, std::nullopt, "the tokenizer has more tokens than the model's vocabulary");
  n_ctx_ = n_ctx > 0 ? n_ctx : std::min<int64_t>(model_.hp.n_ctx_train, 4096);
  if (n_ctx_ > model_.hp.n_ctx_train)
    throw InputError("-c", std::nullopt,
                     "a context of " + std::to_string(n_ctx_) + " tokens is longer than the " +
                         std::to_string(model_.hp.n_ctx_train) + " the model was trained on");
  try {
    tmpl_ = load_chat_template(path);
  } catch (const InputError&) {
    tmpl_.reset();  // a base model: --chat is refused where it is asked for
  }
}

std::string EvalModel::chat(const std::string& user, const nlohmann::ordered_json& tools) const {
  if (!tmpl_) throw InputError(path_, std::nullopt, "the model has no chat template; use --no-chat");
  return chat_prompt(*tmpl_, tok_, "", user, tools);
}

std::string EvalModel::chat_messages(const nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools) const {
  if (!tmpl_) throw InputError(path_, std::nullopt, "the model has no chat template; use --no-chat");
  return chat_prompt(*tmpl_, tok_, messages, tools);
}

bool EvalModel::template_mentions(const std::string& word) const {
  if (!tmpl_) return false;
  for (const auto& [name, source] : tmpl_->templates)
    if (source.find(word) != std::string::npos) return true;
  return false;
}

std::vector<int32_t> EvalModel::encode(const std::string& prompt) const {
  return tok_.encode(prompt, /*add_special=*/true, /*parse_special=*/true);
}

Generation EvalModel::generate(const std::string& prompt, int64_t max_tokens, const std::vector<std::string>& stops) const {
  Generation g;
  std::vector<int32_t> ids = encode(prompt);
  if (ids.empty()) throw InputError("optiq eval", std::nullopt, "an empty prompt");
  const int64_t keep = std::max<int64_t>(1, n_ctx_ - std::min<int64_t>(max_tokens, n_ctx_ / 2));
  if (static_cast<int64_t>(ids.size()) > keep) ids.erase(ids.begin(), ids.end() - keep);
  g.n_prompt = static_cast<int64_t>(ids.size());
  const int64_t V = model_.hp.n_vocab;
  // Only the positions this request can reach.
  engine::KVCache cache = engine::make_kv_cache(model_, std::min<int64_t>(n_ctx_, g.n_prompt + max_tokens), kv_);
  std::vector<float> logits(static_cast<size_t>(V));
  engine::forward(model_, cache, ids, /*all_logits=*/false, logits.data());
  std::vector<int32_t> out;
  g.stopped_by = "max tokens";
  for (int64_t i = 0; i < max_tokens; ++i) {
    const int32_t next = argmax(logits.data(), V);
    if (next == tok_.eos || next == tok_.eot) {
      g.stopped_by = "eos";
      break;
    }
    out.push_back(next);
    g.text = tok_.decode(out, /*skip_special=*/true);
    size_t cut = std::string::npos;
    for (const std::string& s : stops) cut = std::min(cut, g.text.find(s));
    if (cut != std::string::npos) {
      g.text.resize(cut);
      g.stopped_by = "stop sequence";
      break;
    }
    if (cache.n_past >= cache.n_ctx) {
      g.stopped_by = "context";
      break;
    }
    if (i + 1 == max_tokens) break;
    const int32_t one[1] = {next};
    engine::forward(model_, cache, one, false, logits.data());
  }
  g.n_generated = static_cast<int64_t>(out.size());
  return g;
}

double EvalModel::continuation_logprob(const std::string& context, const std::string& continuation) const {
  return continuation_logprobs(context, {continuation})[0];
}

std::vector<double> EvalModel::continuation_logprobs(const std::string& context,
                                                     const std::vector<std::string>& continuations) const {
  std::vector<int32_t> ctx = encode(context);
  const int64_t V = model_.hp.n_vocab;
  std::vector<std::vector<int32_t>> conts;
  bool all_single = true;
  for (const std::string& c : continuations) {
    conts.push_back(tok_.encode(c, /*add_special=*/false, /*parse_special=*/false));
    if (conts.back().empty()) throw InputError("optiq eval", std::nullopt, "an empty continuation");
    all_single = all_single && conts.back().size() == 1;
  }
  // A context longer than the model's keeps its last tokens (left truncation).
  size_t longest = 0;
  for (const auto& c : conts) longest = std::max(longest, c.size());
  if (longest >= static_cast<size_t>(n_ctx_)) throw InputError("optiq eval", std::nullopt, "a continuation longer than the context");
  const size_t keep = static_cast<size_t>(n_ctx_) - longest;
  if (ctx.size() > keep) ctx.erase(ctx.begin(), ctx.end() - static_cast<std::ptrdiff_t>(keep));
  std::vector<double> out;
  if (all_single) {
    engine::KVCache cache = engine::make_kv_cache(model_, static_cast<int64_t>(ctx.size()), kv_);
    std::vector<float> logits(static_cast<size_t>(V));
    engine::forward(model_, cache, ctx, false, logits.data());
    for (const auto& c : conts) out.push_back(-token_nll(logits.data(), V, c[0]));
    return out;
  }
  for (const auto& c : conts) {
    std::vector<int32_t> all = ctx;
    all.insert(all.end(), c.begin(), c.end());
    engine::KVCache cache = engine::make_kv_cache(model_, static_cast<int64_t>(all.size()), kv_);
    std::vector<float> logits(all.size() * static_cast<size_t>(V));
    engine::forward(model_, cache, all, true, logits.data());
    double lp = 0;
    for (size_t k = 0; k < c.size(); ++k)
      lp -= token_nll(logits.data() + (ctx.size() - 1 + k) * static_cast<size_t>(V), V, c[k]);
    out.push_back(lp);
  }
  return out;
}

}  // namespace optiq::eval
