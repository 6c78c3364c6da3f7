// Test-only bridge for the Python oracle (tests/oracle/check_sampling.py); not installed.
// Applies one step of optiq's sampler chain to a row of logits and prints the candidates left,
// one "id logit" line each, in the order the step leaves them:
//   sampling_tool top_k|top_p|min_p|temp|penalty|greedy VALUE LOGITS.f32 [HISTORY_ID ...]
// LOGITS.f32 holds n_vocab little-endian floats; HISTORY_IDs are the recent tokens the penalty
// step looks at (VALUE is then the penalty). greedy prints the one token temperature 0 picks.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/sampling.h"

namespace {

using optiq::engine::Candidate;

int run(int argc, char** argv) {
  if (argc < 4) throw std::runtime_error("usage: sampling_tool STEP VALUE LOGITS.f32 [HISTORY_ID ...]");
  const std::string step = argv[1];
  const float value = std::stof(argv[2]);
  std::ifstream in(argv[3], std::ios::binary);
  if (!in) throw std::runtime_error(std::string("cannot open ") + argv[3]);
  const std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (bytes.empty() || bytes.size() % sizeof(float) != 0) throw std::runtime_error("the logits file is not whole floats");
  std::vector<float> logits(bytes.size() / sizeof(float));
  std::memcpy(logits.data(), bytes.data(), bytes.size());
  std::vector<int32_t> history;
  for (int i = 4; i < argc; ++i) history.push_back(std::stoi(argv[i]));

  std::vector<Candidate> cand;
  for (size_t i = 0; i < logits.size(); ++i) cand.push_back({static_cast<int32_t>(i), logits[i]});
  if (step == "top_k") {
    optiq::engine::top_k_filter(cand, static_cast<int32_t>(value));
  } else if (step == "top_p") {
    optiq::engine::top_p_filter(cand, value);
  } else if (step == "min_p") {
    optiq::engine::min_p_filter(cand, value);
  } else if (step == "temp") {
    optiq::engine::apply_temperature(cand, value);
  } else if (step == "penalty") {
    optiq::engine::apply_repeat_penalty(cand, history, value);
  } else if (step == "greedy") {
    optiq::engine::SamplingParams params;
    params.temperature = 0;
    optiq::engine::Sampler sampler(params, static_cast<int64_t>(logits.size()));
    cand = {{sampler.sample(logits.data()), 0.0f}};
  } else {
    throw std::runtime_error("unknown step " + step);
  }
  for (const Candidate& c : cand) std::printf("%d %.9g\n", c.id, c.logit);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sampling_tool: %s\n", e.what());
    return 1;
  }
}
