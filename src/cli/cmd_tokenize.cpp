#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "model/tokenizer.h"
#include "util/error.h"
#include "util/json_file.h"

namespace optiq::cli {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, std::nullopt, "cannot open the file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A piece for display: printable as it is, control bytes escaped the way JSON would.
std::string display(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

Command register_tokenize(CLI::App& app) {
  struct Args {
    std::string model, text, file;
    bool ids = false, no_special = false, no_bos = false, jsonl = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand(
      "tokenize", "Tokenize text with a model's tokenizer (GGUF, also vocabulary-only, or HF folder)");
  sub->add_option("model", args->model, ".gguf file, Hugging Face folder, or hub id org/name[@revision]")->required();
  CLI::Option* text_opt = sub->add_option("text", args->text, "the text to tokenize");
  sub->add_option("-f,--file", args->file, "read the text from a file (exactly, no newline stripped)");
  sub->add_flag("--ids", args->ids, "print only the ids, as a list: [1, 2, 3]");
  sub->add_flag("--no-special", args->no_special,
                "do not parse special tokens written in the text (tokenize them as plain text)");
  sub->add_flag("--no-bos", args->no_bos, "do not add BOS/EOS even where the model asks for them");
  sub->add_flag("--jsonl", args->jsonl,
                "the input holds one JSON string per line; print one JSON object per line: "
                "{\"ids\": [...], \"decoded\": \"...\"}");
  return {sub, [args, text_opt] {
            const bool have_text = text_opt->count() > 0;
            if (have_text == !args->file.empty())
              throw InputError("optiq tokenize", std::nullopt, "give either TEXT or -f FILE (exactly one)");
            const Tokenizer tok = load_tokenizer(resolve_model_argument(args->model));
            const std::string input = have_text ? args->text : read_file(args->file);
            const bool add_special = !args->no_bos, parse_special = !args->no_special;
            if (args->jsonl) {
              std::istringstream lines(input);
              std::string line;
              size_t line_no = 0;
              while (std::getline(lines, line)) {
                ++line_no;
                if (line.empty()) continue;
                const nlohmann::json j = parse_json(
                    line, (args->file.empty() ? std::string("TEXT") : args->file) + ": line " +
                              std::to_string(line_no));
                if (!j.is_string())
                  throw InputError(args->file, std::nullopt, "line " + std::to_string(line_no) + " is not a JSON string");
                const auto ids = tok.encode(j.get<std::string>(), add_special, parse_special);
                nlohmann::json out;
                out["ids"] = ids;
                out["decoded"] = tok.decode(ids);
                std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
              }
              return 0;
            }
            const auto ids = tok.encode(input, add_special, parse_special);
            if (args->ids) {
              std::string s = "[";
              for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + std::to_string(ids[i]);
              std::printf("%s]\n", s.c_str());
              return 0;
            }
            for (int32_t id : ids)
              std::printf("%6d -> %s\n", id, display(tok.token_to_piece(id)).c_str());
            return 0;
          }};
}

}  // namespace optiq::cli
