#include <cstdio>

#include "calib/mix.h"
#include "cli/commands.h"
#include "util/atomic_file.h"
#include "util/error.h"

namespace optiq::cli {
namespace {

void print_counts(const calib::CalibrationSet& set, size_t seq_len) {
  std::printf("%-16s %8s %9s %10s %12s %9s\n", "domain", "samples", "tokens", "sequences", "calibration", "held-out");
  calib::DomainCount total{.domain = "total"};
  for (const calib::DomainCount& d : set.domains) {
    std::printf("%-16s %8zu %9zu %10zu %12zu %9zu\n", d.domain.c_str(), d.samples, d.tokens, d.sequences,
                d.calibration, d.held_out);
    total.samples += d.samples;
    total.tokens += d.tokens;
    total.sequences += d.sequences;
    total.calibration += d.calibration;
    total.held_out += d.held_out;
  }
  std::printf("%-16s %8zu %9zu %10zu %12zu %9zu\n", total.domain.c_str(), total.samples, total.tokens,
              total.sequences, total.calibration, total.held_out);
  std::printf("sequences of %zu tokens; calibration %zu x %zu = %zu tokens\n", seq_len, set.calibration.size(),
              seq_len, set.calibration.size() * seq_len);
}

// One JSON object per sample: {"line", "domain", "mode", "text", "tokens"}.
void dump_samples(const std::vector<calib::TokenizedSample>& samples, const std::string& path) {
  AtomicFile out(path);
  for (const calib::TokenizedSample& s : samples) {
    const nlohmann::ordered_json j = {{"line", s.line},
                                      {"domain", s.domain},
                                      {"mode", calib::render_mode_name(s.mode)},
                                      {"text", s.rendered},
                                      {"tokens", s.tokens}};
    const std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    out.write(line.data(), line.size());
  }
  out.commit();
}

}  // namespace

Command register_calib_mix(CLI::App& app) {
  struct Args {
    std::string model;
    std::string mix = "optiq";
    size_t seq_len = 512;
    size_t n_calibration = 0;
    double held_out_fraction = 0.1;
    size_t show = 0;
    std::string dump;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "calib-mix", "Render and tokenize a calibration mix for a model; print per-domain token counts");
  sub->add_option("model", args->model, ".gguf file, Hugging Face folder, or hub id org/name[@revision]")->required();
  sub->add_option("--calibration-mix", args->mix, "'optiq' (the shipped mix) or a .jsonl file")
      ->default_val("optiq");
  sub->add_option("--seq-len", args->seq_len, "tokens per sequence")->default_val(512);
  sub->add_option("--n-calibration", args->n_calibration, "calibration sequences to select (default: all)");
  sub->add_option("--held-out-fraction", args->held_out_fraction,
                  "share of each domain's sequences held out for evaluation")
      ->default_val(0.1);
  sub->add_option("--show", args->show, "also print the first N rendered samples");
  sub->add_option("--dump", args->dump,
                  "write every rendered sample as JSONL: {\"line\", \"domain\", \"mode\", \"text\", \"tokens\"}");
  return {sub, [args] {
            const std::filesystem::path mix_path = calib::resolve_calibration_mix(args->mix);
            const calib::CalibrationMix mix = calib::read_calibration_mix(mix_path);
            const std::filesystem::path model = resolve_model_argument(args->model);
            const Tokenizer tokenizer = load_tokenizer(model);
            const std::optional<ChatTemplate> tmpl = calib::find_chat_template(model);
            std::vector<std::string> warnings;
            const auto samples = calib::tokenize_mix(mix, tokenizer, tmpl ? &*tmpl : nullptr, warnings);
            calib::CalibrationOptions options;
            options.seq_len = args->seq_len;
            options.n_calibration = args->n_calibration;
            options.held_out_fraction = args->held_out_fraction;
            calib::CalibrationSet set = calib::select_sequences(samples, options);
            warnings.insert(warnings.end(), set.warnings.begin(), set.warnings.end());

            std::printf("mix:           %s (%zu samples)\n", mix_path.string().c_str(), mix.samples.size());
            std::printf("chat template: %s\n", tmpl ? tmpl->origin.c_str() : "none (fallback format)");
            print_counts(set, args->seq_len);
            for (size_t i = 0; i < args->show && i < samples.size(); ++i) {
              const calib::TokenizedSample& s = samples[i];
              std::printf("\n--- sample %zu: line %zu, %s, %zu tokens, %s ---\n", i + 1, s.line, s.domain.c_str(),
                          s.tokens.size(), calib::render_mode_name(s.mode));
              std::fwrite(s.rendered.data(), 1, s.rendered.size(), stdout);
              std::printf("\n");
            }
            if (!args->dump.empty()) dump_samples(samples, args->dump);
            for (const std::string& w : warnings) std::fprintf(stderr, "optiq: warning: %s\n", w.c_str());
            return 0;
          }};
}

}  // namespace optiq::cli
