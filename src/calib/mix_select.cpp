// From samples to calibration and held-out token sequences: tokenizing with the target's
// tokenizer, cutting each domain's stream into fixed-length sequences, and a deterministic,
// domain-balanced choice between the two sets.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "calib/mix.h"
#include "io/gguf.h"
#include "util/error.h"

namespace optiq::calib {
namespace fs = std::filesystem;

namespace {

bool is_gguf_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::string_view(magic, 4) == "GGUF";
}

// Whether load_chat_template would find a template, so that "none" can be told apart from a
// broken one (which must stay an error).
bool has_chat_template(const fs::path& model) {
  if (fs::is_directory(model)) {
    if (fs::exists(model / "chat_template.jinja") || fs::exists(model / "chat_template.json")) return true;
    const fs::path config = model / "tokenizer_config.json";
    if (!fs::exists(config)) return false;
    std::ifstream in(config, std::ios::binary);
    const auto j = nlohmann::json::parse(in, nullptr, false);
    return j.is_discarded() || (j.is_object() && j.contains("chat_template"));
  }
  if (!is_gguf_file(model)) return true;  // let load_chat_template name the problem
  const GgufFile f(model.string());
  for (const auto& [key, value] : f.metadata().entries())
    if (key.rfind("tokenizer.chat_template", 0) == 0) return true;
  return false;
}

// Evenly spaced positions of k held-out items among n: floor((j + 0.5) * n / k).
std::vector<bool> held_out_mask(size_t n, double fraction) {
  std::vector<bool> mask(n, false);
  if (n < 2 || fraction <= 0) return mask;
  size_t k = static_cast<size_t>(std::llround(fraction * static_cast<double>(n)));
  k = std::clamp<size_t>(k, 1, n - 1);
  for (size_t j = 0; j < k; ++j) mask[(2 * j + 1) * n / (2 * k)] = true;
  return mask;
}

}  // namespace

std::optional<ChatTemplate> find_chat_template(const fs::path& model) {
  if (!has_chat_template(model)) return std::nullopt;
  return load_chat_template(model);
}

std::vector<TokenizedSample> tokenize_mix(const CalibrationMix& mix, const Tokenizer& tokenizer,
                                          const ChatTemplate* tmpl, std::vector<std::string>& warnings) {
  std::vector<TokenizedSample> out;
  out.reserve(mix.samples.size());
  std::map<RenderMode, std::vector<size_t>> simplified;  // mode -> lines
  for (const MixSample& s : mix.samples) {
    TokenizedSample t;
    t.domain = s.domain;
    t.line = s.line;
    t.rendered = render_sample(s, tmpl, mix.origin, &t.mode);
    t.tokens = tokenizer.encode(t.rendered, /*add_special=*/true, /*parse_special=*/s.is_chat());
    if (tokenizer.add_bos && t.tokens.size() >= 2 && t.tokens[0] == tokenizer.bos && t.tokens[1] == tokenizer.bos)
      t.tokens.erase(t.tokens.begin());
    if (t.mode != RenderMode::Text && t.mode != RenderMode::Template && t.mode != RenderMode::Fallback)
      simplified[t.mode].push_back(s.line);
    out.push_back(std::move(t));
  }
  const bool any_chat = std::any_of(mix.samples.begin(), mix.samples.end(), [](const MixSample& s) { return s.is_chat(); });
  if (!tmpl && any_chat)
    warnings.push_back("the model has no chat template: chat samples use optiq's fallback format (\"User: ...\")");
  for (const auto& [mode, lines] : simplified) {
    std::string list;
    for (size_t i = 0; i < lines.size() && i < 8; ++i) list += (i ? ", " : "") + std::to_string(lines[i]);
    if (lines.size() > 8) list += ", ...";
    warnings.push_back(std::to_string(lines.size()) + " chat sample(s) rendered as \"" + render_mode_name(mode) +
                       "\" because the chat template rejected or ignores their original form (lines " + list + ")");
  }
  return out;
}

CalibrationSet select_sequences(const std::vector<TokenizedSample>& samples, const CalibrationOptions& options) {
  if (options.seq_len == 0) throw InputError("--seq-len", std::nullopt, "must be at least 1");
  if (!(options.held_out_fraction >= 0 && options.held_out_fraction < 1))
    throw InputError("--held-out-fraction", std::nullopt, "must be in [0, 1)");
  CalibrationSet set;

  // Each domain's samples, concatenated in file order, cut into whole sequences.
  std::vector<std::vector<int32_t>> streams;
  for (const TokenizedSample& s : samples) {
    auto it = std::find_if(set.domains.begin(), set.domains.end(), [&](const DomainCount& d) { return d.domain == s.domain; });
    if (it == set.domains.end()) {
      set.domains.push_back({.domain = s.domain});
      streams.emplace_back();
      it = set.domains.end() - 1;
    }
    const size_t d = static_cast<size_t>(it - set.domains.begin());
    it->samples += 1;
    it->tokens += s.tokens.size();
    streams[d].insert(streams[d].end(), s.tokens.begin(), s.tokens.end());
  }

  std::vector<std::vector<CalibSequence>> pools(set.domains.size());  // calibration candidates
  for (size_t d = 0; d < set.domains.size(); ++d) {
    DomainCount& dc = set.domains[d];
    dc.sequences = streams[d].size() / options.seq_len;
    if (dc.sequences == 0)
      set.warnings.push_back("domain \"" + dc.domain + "\" has " + std::to_string(dc.tokens) +
                             " tokens, less than one sequence of " + std::to_string(options.seq_len));
    const std::vector<bool> held = held_out_mask(dc.sequences, options.held_out_fraction);
    for (size_t i = 0; i < dc.sequences; ++i) {
      const auto first = streams[d].begin() + static_cast<std::ptrdiff_t>(i * options.seq_len);
      CalibSequence seq{dc.domain, i, std::vector<int32_t>(first, first + static_cast<std::ptrdiff_t>(options.seq_len))};
      if (held[i]) {
        set.held_out.push_back(std::move(seq));
        dc.held_out += 1;
      } else {
        pools[d].push_back(std::move(seq));
      }
    }
  }

  size_t available = 0;
  for (const auto& p : pools) available += p.size();
  size_t want = options.n_calibration == 0 ? available : options.n_calibration;
  if (want > available) {
    set.warnings.push_back("--n-calibration " + std::to_string(want) + " asks for more sequences than the mix has (" +
                           std::to_string(available) + " besides the held-out ones); using all of them");
    want = available;
  }
  for (size_t round = 0; set.calibration.size() < want; ++round)
    for (size_t d = 0; d < pools.size() && set.calibration.size() < want; ++d)
      if (round < pools[d].size()) {
        set.calibration.push_back(std::move(pools[d][round]));
        set.domains[d].calibration += 1;
      }
  return set;
}

CalibrationSet build_calibration_set(const CalibrationMix& mix, const fs::path& model,
                                     const CalibrationOptions& options) {
  const Tokenizer tokenizer = load_tokenizer(model);
  std::vector<std::string> warnings;
  const std::optional<ChatTemplate> tmpl = find_chat_template(model);
  const auto samples = tokenize_mix(mix, tokenizer, tmpl ? &*tmpl : nullptr, warnings);
  CalibrationSet set = select_sequences(samples, options);
  set.warnings.insert(set.warnings.begin(), warnings.begin(), warnings.end());
  return set;
}

}  // namespace optiq::calib
