#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "calib/imatrix.h"
#include "cli/commands.h"
#include "engine/model.h"
#include "io/imatrix_file.h"
#include "model/model_source.h"
#include "model/tokenizer.h"
#include "util/error.h"
#include "util/progress.h"

namespace optiq::cli {

Command register_imatrix(CLI::App& app) {
  struct Args {
    std::string model, text_file, output = "imatrix.gguf", format;
    int64_t n_ctx = 512, chunks = -1;
    int threads = 0;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("imatrix", "Compute an importance matrix over a text (as llama-imatrix does)");
  sub->add_option("model", args->model, ".gguf file, Hugging Face folder, or hub id org/name[@revision]")->required();
  sub->add_option("-f,--file", args->text_file, "calibration text file")->required();
  sub->add_option("-o,--output", args->output, "output file (default imatrix.gguf; a .dat name writes the legacy form)");
  sub->add_option("--output-format", args->format, "gguf or dat (default: from the output's extension)")
      ->check(CLI::IsMember({"gguf", "dat"}));
  sub->add_option("-c,--ctx-size", args->n_ctx, "tokens per chunk (default 512)")->check(CLI::PositiveNumber);
  sub->add_option("--chunks", args->chunks, "chunks to evaluate (default: all the text holds)")->check(CLI::PositiveNumber);
  sub->add_option("-t,--threads", args->threads, "chunks evaluated in parallel (default: all cores)")
      ->check(CLI::NonNegativeNumber);
  return {sub, [args] {
            std::ifstream in(args->text_file, std::ios::binary);
            if (!in) throw InputError(args->text_file, std::nullopt, "cannot open the text file");
            std::stringstream text;
            text << in.rdbuf();
            const std::string path = resolve_model_argument(args->model);
            const ModelSource src = open_model_source(path);
            const engine::Model model = engine::load_model(src);
            const Tokenizer tok = load_tokenizer(path);
            const std::vector<int32_t> tokens = tok.encode(text.str(), /*add_special=*/true, /*parse_special=*/false);
            ImatrixOptions options;
            options.n_ctx = args->n_ctx;
            options.max_chunks = args->chunks;
            options.threads = args->threads > 0 ? args->threads : std::max(1u, std::thread::hardware_concurrency());
            options.dataset = args->text_file;
            options.bos = tok.add_bos ? tok.bos : -1;
            const int64_t total = std::min<int64_t>(args->chunks < 0 ? INT64_MAX : args->chunks,
                                                    static_cast<int64_t>(tokens.size()) / args->n_ctx);
            ProgressBar bar("imatrix", static_cast<uint64_t>(std::max<int64_t>(total, 0)), 1, "chunks");
            const Imatrix m = compute_imatrix(model, tokens, options, [&](int64_t done, int64_t) { bar.update(done); });
            bar.finish();
            const bool dat = args->format.empty() ? args->output.ends_with(".dat") : args->format == "dat";
            if (dat) write_imatrix_dat(args->output, m);
            else write_imatrix_gguf(args->output, m);
            std::printf("wrote %s (%s): %zu entries from %d chunks of %lld tokens (%zu tokens in the text) in %.2f s\n",
                        args->output.c_str(), dat ? "legacy .dat" : "GGUF", m.entries.size(), m.chunk_count,
                        static_cast<long long>(args->n_ctx), tokens.size(), bar.elapsed_seconds());
            return 0;
          }};
}

}  // namespace optiq::cli
