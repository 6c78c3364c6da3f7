// write_peft (src/lora/peft.h): PEFT folders read back by read_peft as the same matrices, ranks
// and scales (llama with its q/k rows permuted, qwen2 without), the config's rank_pattern and
// alpha_pattern, the file's HF names, shapes and row order, and the refusals. That PEFT itself
// loads the folders is left to the oracle once `optiq lora train` writes them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "io/safetensors.h"
#include "lora/adapter.h"
#include "lora/peft.h"
#include "test_util.h"
#include "tiny_llama.h"
#include "util/error.h"

namespace optiq {
namespace {

using lora::Adapter;
using lora::LoraMatrix;

// q, k, v, o, gate and down of every block with random factors, ranks 4 (the base rank), 2 and 8
// and scales that give alpha 8 (the base alpha) and others, such as 0.37 whose alpha is no round
// number.
Adapter peft_test_adapter(const engine::Model& m, const std::string& arch) {
  Adapter a;
  a.path = "peft test adapter";
  a.architecture = arch;
  uint32_t seed = 40;
  for (const engine::Layer& L : m.layers)
    for (const auto& [w, rank, scale] : {std::tuple{&L.wq, 4, 2.0f}, {&L.wk, 2, 0.37f}, {&L.wv, 4, 0.5f},
                                         {&L.wo, 8, 1.0f}, {&L.ffn_gate, 2, 4.0f}, {&L.ffn_down, 4, 2.0f}}) {
      seed += 2;
      a.matrices.push_back({.target = w->name, .rank = rank, .n_in = w->n_in, .n_out = w->n_out,
                            .a = test::random_values(static_cast<size_t>(rank * w->n_in), seed, 0.1f),
                            .b_t = test::random_values(static_cast<size_t>(rank * w->n_out), seed + 1, 0.1f),
                            .scale = scale, .a_f16 = {}, .b_t_f16 = {}});
    }
  return a;
}

const lora::PeftWriteOptions kPeftTestOptions = {"test/tiny-base", 4, 8.0};

void expect_same_matrices(const Adapter& got, const Adapter& want) {
  ASSERT_EQ(got.matrices.size(), want.matrices.size());
  EXPECT_EQ(got.architecture, want.architecture);
  for (const LoraMatrix& w : want.matrices) {
    const LoraMatrix* g = nullptr;
    for (const LoraMatrix& candidate : got.matrices)
      if (candidate.target == w.target) g = &candidate;
    ASSERT_NE(g, nullptr) << w.target;
    EXPECT_EQ(g->rank, w.rank) << w.target;
    EXPECT_EQ(g->n_in, w.n_in) << w.target;
    EXPECT_EQ(g->n_out, w.n_out) << w.target;
    EXPECT_EQ(g->scale, w.scale) << w.target;
    EXPECT_EQ(g->a, w.a) << w.target;
    EXPECT_EQ(g->b_t, w.b_t) << w.target;
  }
}

// B [n_out, rank] as the file holds it.
std::vector<float> file_b(const SafetensorsFile& file, const std::string& module) {
  const SafetensorsTensor* t = file.find("base_model.model." + module + ".lora_B.weight");
  EXPECT_NE(t, nullptr) << module;
  if (!t) return {};
  const auto bytes = file.data(*t);
  std::vector<float> b(t->n_elements());
  std::memcpy(b.data(), bytes.data(), bytes.size());
  return b;
}

TEST(PeftWrite, LlamaRoundTripUnpermutesQK) {
  const engine::Model m = test::tiny_llama({});
  const Adapter adapter = peft_test_adapter(m, "llama");
  const test::ScratchDir dir;
  lora::write_peft(adapter, m.hp, kPeftTestOptions, dir / "adapter");
  expect_same_matrices(lora::read_peft(dir / "adapter", m.hp), adapter);
  EXPECT_NO_THROW(lora::load_adapter(dir / "adapter", m));
  std::vector<std::string> entries;
  for (const auto& e : std::filesystem::directory_iterator(dir / "adapter")) entries.push_back(e.path().filename());
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"adapter_config.json", "adapter_model.safetensors"}))
      << "no temporary file left behind";

  // The file's q B rows are HF's: llama.cpp's row h·d + 2i + j is HF's h·d + j·d/2 + i (the
  // converter's permutation, as model_source applies it). k (2 heads) likewise; v unchanged.
  const SafetensorsFile file((dir / "adapter/adapter_model.safetensors").string());
  for (const auto& [index, heads] : {std::pair{0, m.hp.n_head}, {1, m.hp.n_head_kv}, {2, int64_t{0}}}) {
    const LoraMatrix& lm = adapter.matrices[static_cast<size_t>(index)];
    const std::string module = std::string("model.layers.0.self_attn.") + "qkv"[index] + "_proj";
    const std::vector<float> b = file_b(file, module);
    ASSERT_EQ(b.size(), lm.b_t.size());
    const int64_t d = heads ? lm.n_out / heads : lm.n_out;
    for (int64_t row = 0; row < lm.n_out; ++row) {
      const int64_t h = row / d, within = row % d;
      const int64_t hf_row = heads ? h * d + (within % 2) * (d / 2) + within / 2 : row;
      for (int64_t k = 0; k < lm.rank; ++k)
        ASSERT_EQ(b[static_cast<size_t>(hf_row * lm.rank + k)], lm.b_t[static_cast<size_t>(k * lm.n_out + row)])
            << module << " row " << row;
    }
  }
}

TEST(PeftWrite, Qwen2ConfigHasPatternsForMixedRanksAndAlphas) {
  engine::Model m = test::tiny_llama({});
  m.hp.arch = Arch::Qwen2;
  const Adapter adapter = peft_test_adapter(m, "qwen2");
  const test::ScratchDir dir;
  lora::write_peft(adapter, m.hp, kPeftTestOptions, dir.path());
  expect_same_matrices(lora::read_peft(dir / "adapter_config.json", m.hp), adapter);

  const nlohmann::json j = nlohmann::json::parse(test::read_text(dir / "adapter_config.json"));
  EXPECT_EQ(j["peft_type"], "LORA");
  EXPECT_EQ(j["task_type"], "CAUSAL_LM");
  EXPECT_EQ(j["base_model_name_or_path"], "test/tiny-base");
  EXPECT_EQ(j["r"], 4);
  EXPECT_EQ(j["lora_alpha"], 8.0);
  EXPECT_EQ(j["target_modules"], nlohmann::json({"down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "v_proj"}));
  EXPECT_EQ(j["lora_dropout"], 0.0);
  EXPECT_EQ(j["bias"], "none");
  EXPECT_EQ(j["fan_in_fan_out"], false);
  EXPECT_EQ(j["use_rslora"], false);
  EXPECT_EQ(j["inference_mode"], true);
  // Ranks other than r = 4 (k 2, o 8, gate 2) and alphas (scale · rank) other than lora_alpha = 8
  // (k 0.37 · 2, v 0.5 · 4; q, o, gate and down give 8) are named by full module path.
  nlohmann::json rank_pattern = nlohmann::json::object(), alpha_pattern = nlohmann::json::object();
  for (int layer = 0; layer < 3; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    rank_pattern[p + "self_attn.k_proj"] = 2;
    rank_pattern[p + "self_attn.o_proj"] = 8;
    rank_pattern[p + "mlp.gate_proj"] = 2;
    alpha_pattern[p + "self_attn.k_proj"] = static_cast<double>(0.37f) * 2;
    alpha_pattern[p + "self_attn.v_proj"] = 2.0;
  }
  EXPECT_EQ(j["rank_pattern"], rank_pattern);
  EXPECT_EQ(j["alpha_pattern"], alpha_pattern);

  // HF names, shapes A [r, in] and B [out, r] in F32; qwen2's q rows are not permuted.
  const SafetensorsFile file((dir / "adapter_model.safetensors").string());
  EXPECT_EQ(file.contents().tensors.size(), 2 * adapter.matrices.size());
  const SafetensorsTensor* a = file.find("base_model.model.model.layers.2.mlp.down_proj.lora_A.weight");
  const SafetensorsTensor* b = file.find("base_model.model.model.layers.2.mlp.down_proj.lora_B.weight");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->dtype, SafetensorsDtype::F32);
  EXPECT_EQ(a->shape, (std::vector<uint64_t>{4, 96}));
  EXPECT_EQ(b->shape, (std::vector<uint64_t>{128, 4}));
  EXPECT_EQ(file_b(file, "model.layers.0.self_attn.q_proj"), lora::transposed(adapter.matrices[0].b_t, 4, 256));
}

TEST(PeftWrite, RefusesWhatItCannotWrite) {
  const engine::Model m = test::tiny_llama({});
  const test::ScratchDir dir;
  const auto refused = [&](const Adapter& a, const std::string& expect) {
    try {
      lora::write_peft(a, m.hp, kPeftTestOptions, dir / "out");
      ADD_FAILURE() << "written, expected: " << expect;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(expect), std::string::npos) << e.what();
    }
    EXPECT_FALSE(std::filesystem::exists(dir / "out")) << "nothing written for " << expect;
  };
  Adapter norm = peft_test_adapter(m, "llama");
  norm.matrices[3].target = "blk.1.attn_norm.weight";
  refused(norm, "peft test adapter: blk.1.attn_norm.weight: not a block projection (q/k/v/o, gate/up/down) of a llama model");
  Adapter embedding = peft_test_adapter(m, "llama");
  embedding.matrices[0].target = "token_embd.weight";
  refused(embedding, "token_embd.weight: not a block projection");
  Adapter twice = peft_test_adapter(m, "llama");
  twice.matrices[1].target = twice.matrices[0].target;
  refused(twice, "blk.0.attn_q.weight: adapted twice");
  Adapter short_a = peft_test_adapter(m, "llama");
  short_a.matrices[2].a.pop_back();
  refused(short_a, "blk.0.attn_v.weight: factor sizes do not match rank 4");
  Adapter other = peft_test_adapter(m, "qwen2");
  refused(other, "made for a qwen2 model; the base is llama");
  Adapter odd_q = peft_test_adapter(m, "llama");
  odd_q.matrices[0].n_out = 250;
  odd_q.matrices[0].b_t.resize(4 * 250);
  refused(odd_q, "blk.0.attn_q.weight: its rows are not a multiple of 2 × heads");
  EXPECT_THROW(lora::write_peft(peft_test_adapter(m, "llama"), m.hp, {"base", 0, 8.0}, dir / "out"), std::invalid_argument);
}

}  // namespace
}  // namespace optiq
