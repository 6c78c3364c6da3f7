#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>

#include "cli/commands.h"
#include "model/model_source.h"

namespace optiq::cli {
namespace {

std::string shape_text(const std::vector<uint64_t>& shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? " x " : "") + std::to_string(shape[i]);
  return s;
}

std::string count_text(uint64_t n) {
  char buf[32];
  if (n >= 1'000'000'000) std::snprintf(buf, sizeof buf, "%.2fB", n / 1e9);
  else if (n >= 1'000'000) std::snprintf(buf, sizeof buf, "%.2fM", n / 1e6);
  else if (n >= 1'000) std::snprintf(buf, sizeof buf, "%.1fK", n / 1e3);
  else std::snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  return buf;
}

// What kind of tokenizer the model carries: GGUF's tokenizer.ggml.model, or the HF files present.
std::string tokenizer_kind(const ModelSource& s) {
  if (s.kind == SourceKind::Gguf) {
    auto model = s.metadata.get_string("tokenizer.ggml.model");
    if (!model) return "none";
    const GgufValue* tokens = s.metadata.find("tokenizer.ggml.tokens");
    std::string kind = *model == "llama" ? "SentencePiece (llama)" : *model == "gpt2" ? "byte-level BPE (gpt2)" : *model;
    if (tokens && tokens->as_array()) kind += ", " + std::to_string(tokens->as_array()->items.size()) + " tokens";
    if (auto pre = s.metadata.get_string("tokenizer.ggml.pre")) kind += ", pre-tokenizer " + *pre;
    return kind;
  }
  namespace fs = std::filesystem;
  const fs::path dir(s.path);
  if (fs::exists(dir / "tokenizer.json")) return "Hugging Face tokenizer.json";
  if (fs::exists(dir / "tokenizer.model")) return "SentencePiece tokenizer.model";
  if (fs::exists(dir / "vocab.json") && fs::exists(dir / "merges.txt")) return "byte-level BPE (vocab.json + merges.txt)";
  return "none";
}

nlohmann::ordered_json value_json(const GgufValue& v) {
  return std::visit(
      [](const auto& x) -> nlohmann::ordered_json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, GgufArray>) {
          auto a = nlohmann::ordered_json::array();
          for (const auto& item : x.items) a.push_back(value_json(item));
          return a;
        } else {
          return x;
        }
      },
      v.v);
}

struct Hparam {
  const char* label;
  const char* key;  // after "<arch>."
};
constexpr Hparam kHparams[] = {
    {"layers", "block_count"},
    {"embedding", "embedding_length"},
    {"feed-forward", "feed_forward_length"},
    {"heads", "attention.head_count"},
    {"kv heads", "attention.head_count_kv"},
    {"head dim (k)", "attention.key_length"},
    {"context", "context_length"},
    {"rope base", "rope.freq_base"},
    {"rope base (local)", "rope.freq_base_swa"},
    {"rope scaling", "rope.scaling.type"},
    {"rope dims", "rope.dimension_count"},
    {"sliding window", "attention.sliding_window"},
    {"rms norm eps", "attention.layer_norm_rms_epsilon"},
};

}  // namespace

Command register_info(CLI::App& app) {
  struct Args {
    std::string model;
    bool json = false;
    bool metadata = false;
  };
  auto args = std::make_shared<Args>();
  CLI::App* sub = app.add_subcommand("info", "Show a model's architecture, hyperparameters and tensors");
  sub->add_option("model", args->model, "HF model folder, hub id org/name[@revision], or .gguf")->required();
  sub->add_flag("--json", args->json, "machine-readable output");
  sub->add_flag("--metadata", args->metadata, "also print every metadata key");
  return {sub, [args] {
            const ModelSource s = open_model_source(resolve_model_argument(args->model));
            const std::string arch = s.architecture();
            uint64_t n_params = 0, n_bytes = 0;
            for (const auto& t : s.tensors) {
              n_params += t.n_elements();
              n_bytes += t.data.size();
            }
            const double bpw = n_params ? 8.0 * static_cast<double>(n_bytes) / n_params : 0.0;
            auto hparam = [&](const char* key) { return s.metadata.find(arch + "." + key); };

            if (args->json) {
              nlohmann::ordered_json j;
              j["path"] = s.path;
              j["format"] = s.kind == SourceKind::Gguf ? "gguf" : "huggingface";
              j["architecture"] = arch;
              j["parameters"] = n_params;
              j["tensor_bytes"] = n_bytes;
              j["bits_per_weight"] = bpw;
              j["tokenizer"] = tokenizer_kind(s);
              for (const auto& h : kHparams)
                if (const GgufValue* v = hparam(h.key)) {
                  if (auto i = v->as_int()) j["hparams"][h.key] = *i;
                  else if (auto d = v->as_double()) j["hparams"][h.key] = *d;
                  else if (auto str = v->as_string()) j["hparams"][h.key] = *str;
                }
              for (const auto& t : s.tensors)
                j["tensors"].push_back({{"name", t.name}, {"shape", t.shape},
                                        {"type", ggml_type_name(t.type)}, {"bytes", t.data.size()},
                                        {"offset", t.file_offset}});
              if (args->metadata)
                for (const auto& [k, v] : s.metadata.entries()) {
                  auto& e = j["metadata"][k];
                  e["type"] = gguf_value_type_name(v.type());
                  if (const GgufArray* a = v.as_array()) e["element_type"] = gguf_value_type_name(a->elem_type);
                  e["value"] = value_json(v);
                }
              // Byte tokens are not always valid UTF-8; replace rather than fail.
              std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
              return 0;
            }

            std::printf("model:        %s (%s)\n", s.path.c_str(),
                        s.kind == SourceKind::Gguf ? "GGUF" : "Hugging Face folder");
            std::printf("architecture: %s\n", arch.empty() ? "(unknown)" : arch.c_str());
            if (auto name = s.metadata.get_string("general.name"))
              std::printf("name:         %s\n", name->c_str());
            std::printf("parameters:   %s (%llu)\n", count_text(n_params).c_str(),
                        static_cast<unsigned long long>(n_params));
            std::printf("size:         %.2f MiB in tensors, %.2f bits per weight\n", n_bytes / 1048576.0, bpw);
            std::printf("tokenizer:    %s\n", tokenizer_kind(s).c_str());
            std::printf("hyperparameters:\n");
            for (const auto& h : kHparams)
              if (const GgufValue* v = hparam(h.key))
                std::printf("  %-18s %s\n", h.label, v->to_display().c_str());
            if (args->metadata) {
              std::printf("metadata (%zu keys):\n", s.metadata.size());
              for (const auto& [k, v] : s.metadata.entries())
                std::printf("  %-40s %-7s %s\n", k.c_str(), gguf_value_type_name(v.type()), v.to_display().c_str());
            }
            std::printf("tensors (%zu):\n", s.tensors.size());
            std::printf("  %-36s %-22s %-6s %12s\n", "name", "shape", "type", "bytes");
            for (const auto& t : s.tensors)
              std::printf("  %-36s %-22s %-6s %12zu\n", t.name.c_str(), shape_text(t.shape).c_str(),
                          std::string(ggml_type_name(t.type)).c_str(), t.data.size());
            return 0;
          }};
}

}  // namespace optiq::cli
