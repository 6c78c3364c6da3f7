// Choosing the next token from a row of logits, with the semantics of llama.cpp's default
// sampler chain (common/sampling.cpp, src/llama-sampler.cpp there), in its order:
//   repetition, frequency and presence penalties -> top-k -> top-p -> min-p -> temperature -> draw.
// Each step narrows or reshapes a candidate list; the filters are exposed so that tests can
// check the set each one keeps. Temperature 0 (or below) is greedy decoding: the largest
// logit after the penalty, lowest token id on ties, and no random number is drawn.
#pragma once

#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace optiq::engine {

struct SamplingParams {
  float temperature = 0.0f;     // logits are divided by it; <= 0: greedy
  int32_t top_k = 40;           // keep the k largest logits; <= 0: off
  float top_p = 0.95f;          // keep the most probable tokens up to this mass; >= 1: off
  float min_p = 0.05f;          // keep tokens with p >= min_p * p_max; <= 0: off
  float repeat_penalty = 1.0f;  // for tokens among the last repeat_last_n; 1: off
  int32_t repeat_last_n = 64;   // history the penalties look at, in tokens; 0: off
  float frequency_penalty = 0.0f;  // subtracted per occurrence among the last repeat_last_n; 0: off
  float presence_penalty = 0.0f;   // subtracted once from tokens among the last repeat_last_n; 0: off
  uint32_t seed = 0;            // the draw's random stream
};

struct Candidate {
  int32_t id;   // token id
  float logit;  // its (possibly adjusted) logit
};

// llama.cpp's repetition penalty: every token that occurs in `recent` has a positive logit
// divided by `penalty` and a zero or negative one multiplied by it, once however often it
// occurred.
void apply_repeat_penalty(std::vector<Candidate>& cand, std::span<const int32_t> recent, float penalty);

// OpenAI's frequency and presence penalties as llama.cpp applies them (its penalties sampler,
// after the repetition penalty, over the same window): a token that occurs c > 0 times in
// `recent` has logit -= c * frequency + presence. llama.cpp's window is the last repeat_last_n
// accepted tokens, the prompt's included, where OpenAI speaks of the text so far; optiq keeps
// llama.cpp's, so that one history serves all three penalties.
void apply_frequency_presence_penalty(std::vector<Candidate>& cand, std::span<const int32_t> recent, float frequency,
                                      float presence);

// Keeps the k candidates with the largest logits, sorted in descending order. k <= 0 or
// k >= size keeps all (k >= size still sorts).
void top_k_filter(std::vector<Candidate>& cand, int32_t k);

// Nucleus filter: sorts by descending logit and keeps the shortest prefix whose softmax
// probabilities (over the current candidates) add up to at least p. p >= 1 keeps all.
void top_p_filter(std::vector<Candidate>& cand, float p);

// Keeps the candidates whose probability is at least p times the largest one's, i.e. whose
// logit is at least max_logit + ln(p). Order is kept. p <= 0 keeps all.
void min_p_filter(std::vector<Candidate>& cand, float p);

// Divides every logit by t (t > 0).
void apply_temperature(std::vector<Candidate>& cand, float t);

// Draws one candidate with probability softmax(logits): u uniform in [0, 1), the first
// candidate where the running sum of exp(logit - max) reaches u times the total.
int32_t draw(const std::vector<Candidate>& cand, std::mt19937& rng);

class Sampler {
 public:
  Sampler(const SamplingParams& params, int64_t n_vocab);

  // Records a token of the sequence (prompt tokens and generated ones alike) for the penalty.
  void accept(int32_t token);
  // The next token after `logits` [n_vocab].
  int32_t sample(const float* logits);

 private:
  SamplingParams params_;
  int64_t n_vocab_;
  std::deque<int32_t> recent_;  // [<= repeat_last_n] the latest accepted tokens, oldest first
  std::mt19937 rng_;
  std::vector<Candidate> cand_;  // [<= n_vocab] scratch
};

// A seed from std::random_device, for when the user gives none.
uint32_t random_seed();

}  // namespace optiq::engine
