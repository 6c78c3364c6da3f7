#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "export/convert.h"
#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "io/safetensors.h"
#include "model/model_source.h"
#include "quant/quantize.h"
#include "quant/float16.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq {
namespace {

using test::ScratchDir;

// A tiny HF checkpoint written by the test: every weight element encodes its own position
// (tensor id, row, column) so a misplaced row or a wrong transform is visible.
struct TinyCheckpoint {
  struct Tensor {
    std::string name;
    std::vector<uint64_t> shape;  // PyTorch order
    int id;
  };
  std::vector<Tensor> tensors;
  static float value(int id, uint64_t row, uint64_t col) {
    return static_cast<float>(id * 1000 + row) + static_cast<float>(col) / 64.0f;
  }
  static uint16_t bf16(int id, uint64_t row, uint64_t col) { return f32_to_bf16(value(id, row, col)); }

  // Writes the tensors into two shards plus an index.
  void write(const std::filesystem::path& dir, const nlohmann::json& config) const {
    test::write_text(dir / "config.json", config.dump());
    nlohmann::json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", nlohmann::json::object()}};
    for (int shard = 0; shard < 2; ++shard) {
      std::vector<SafetensorsDecl> decls;
      std::vector<const Tensor*> mine;
      for (size_t i = 0; i < tensors.size(); ++i)
        if (static_cast<int>(i % 2) == shard) {
          decls.push_back({tensors[i].name, SafetensorsDtype::BF16, tensors[i].shape});
          mine.push_back(&tensors[i]);
        }
      const std::string file = "model-0000" + std::to_string(shard + 1) + "-of-00002.safetensors";
      for (const auto* t : mine) index["weight_map"][t->name] = file;
      write_safetensors((dir / file).string(), {{"format", "pt"}}, decls,
                        [&](size_t i, const SafetensorsWriteFn& w) {
                          const Tensor& t = *mine[i];
                          const uint64_t rows = t.shape[0];
                          const uint64_t cols = t.shape.size() > 1 ? t.shape[1] : 1;
                          for (uint64_t r = 0; r < rows; ++r)
                            for (uint64_t c = 0; c < cols; ++c) {
                              uint16_t v = bf16(t.id, r, c);
                              w(&v, 2);
                            }
                        });
    }
    test::write_text(dir / "model.safetensors.index.json", index.dump());
  }
};

nlohmann::json llama_config() {
  return {{"architectures", {"LlamaForCausalLM"}}, {"hidden_size", 16}, {"intermediate_size", 24},
          {"num_hidden_layers", 1}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0}, {"max_position_embeddings", 128},
          {"vocab_size", 32}};
}

TinyCheckpoint llama_tensors() {
  return {{{"model.embed_tokens.weight", {32, 16}, 1},
           {"model.layers.0.self_attn.q_proj.weight", {16, 16}, 2},
           {"model.layers.0.self_attn.k_proj.weight", {8, 16}, 3},
           {"model.layers.0.self_attn.v_proj.weight", {8, 16}, 4},
           {"model.layers.0.self_attn.o_proj.weight", {16, 16}, 5},
           {"model.layers.0.mlp.gate_proj.weight", {24, 16}, 6},
           {"model.layers.0.mlp.up_proj.weight", {24, 16}, 7},
           {"model.layers.0.mlp.down_proj.weight", {16, 24}, 8},
           {"model.layers.0.input_layernorm.weight", {16}, 9},
           {"model.layers.0.post_attention_layernorm.weight", {16}, 10},
           {"model.norm.weight", {16}, 11},
           {"lm_head.weight", {32, 16}, 12}}};
}

float f16_at(const GgufFile& f, const std::string& name, uint64_t row, uint64_t col) {
  const GgufTensorInfo* t = f.find_tensor(name);
  const auto* p = reinterpret_cast<const uint16_t*>(f.tensor_data(*t).data());
  return f16_to_f32(p[row * t->shape[0] + col]);
}

float f32_at(const GgufFile& f, const std::string& name, uint64_t i) {
  const GgufTensorInfo* t = f.find_tensor(name);
  float x;
  std::memcpy(&x, f.tensor_data(*t).data() + 4 * i, 4);
  return x;
}

float expected_f16(int id, uint64_t row, uint64_t col) {
  return f16_to_f32(f32_to_f16(bf16_to_f32(TinyCheckpoint::bf16(id, row, col))));
}

GgufFile convert(const std::filesystem::path& in, const std::filesystem::path& out, GgmlType type) {
  ConvertOptions o;
  o.outtype = type;
  o.output_path = out.string();
  convert_model(open_model_source(in), o);
  return GgufFile(out.string());
}

TEST(ConvertHf, LlamaNamesTypesAndRopePermutation) {
  ScratchDir dir;
  std::filesystem::create_directory(dir / "m");
  llama_tensors().write(dir / "m", llama_config());
  GgufFile f = convert(dir / "m", dir / "out.gguf", GgmlType::F16);

  EXPECT_EQ(f.metadata().get_string("general.architecture"), "llama");
  EXPECT_EQ(f.metadata().get_int("general.file_type"), 1);
  EXPECT_EQ(f.metadata().get_int("llama.attention.head_count_kv"), 2);
  EXPECT_EQ(f.metadata().get_int("llama.rope.dimension_count"), 4);
  EXPECT_FLOAT_EQ(*f.metadata().get_double("llama.rope.freq_base"), 500000.0f);
  ASSERT_EQ(f.tensors().size(), 12u);
  EXPECT_EQ(f.find_tensor("blk.0.attn_norm.weight")->type, GgmlType::F32);
  EXPECT_EQ(f.find_tensor("output.weight")->type, GgmlType::F16);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->shape, (std::vector<uint64_t>{24, 16}));

  // q: 4 heads of 4 rows. Within a head, GGUF row 2i+j holds HF row j*2+i.
  for (uint64_t h = 0; h < 4; ++h)
    for (uint64_t i = 0; i < 2; ++i)
      for (uint64_t j = 0; j < 2; ++j)
        EXPECT_EQ(f16_at(f, "blk.0.attn_q.weight", h * 4 + 2 * i + j, 5), expected_f16(2, h * 4 + j * 2 + i, 5));
  // k uses the KV head count (2 heads of 4 rows); v is not permuted.
  EXPECT_EQ(f16_at(f, "blk.0.attn_k.weight", 4 + 1, 3), expected_f16(3, 4 + 2, 3));
  EXPECT_EQ(f16_at(f, "blk.0.attn_v.weight", 5, 3), expected_f16(4, 5, 3));
  EXPECT_EQ(f32_at(f, "output_norm.weight", 7), bf16_to_f32(TinyCheckpoint::bf16(11, 7, 0)));
}

TEST(ConvertHf, Gemma3NormsGetPlusOne) {
  ScratchDir dir;
  std::filesystem::create_directory(dir / "m");
  TinyCheckpoint ckpt{{{"model.embed_tokens.weight", {32, 16}, 1},
                       {"model.layers.0.self_attn.q_proj.weight", {16, 16}, 2},
                       {"model.layers.0.self_attn.q_norm.weight", {8}, 3},
                       {"model.layers.0.pre_feedforward_layernorm.weight", {16}, 4},
                       {"model.layers.0.post_feedforward_layernorm.weight", {16}, 5},
                       {"model.norm.weight", {16}, 6}}};
  nlohmann::json config = {{"architectures", {"Gemma3ForCausalLM"}}, {"hidden_size", 16},
                           {"intermediate_size", 24}, {"num_hidden_layers", 1}, {"num_attention_heads", 2},
                           {"num_key_value_heads", 1}, {"head_dim", 8}, {"sliding_window", 512}};
  ckpt.write(dir / "m", config);
  GgufFile f = convert(dir / "m", dir / "out.gguf", GgmlType::BF16);
  EXPECT_EQ(f.metadata().get_int("gemma3.attention.key_length"), 8);
  EXPECT_EQ(f.metadata().get_int("gemma3.attention.sliding_window"), 512);
  EXPECT_EQ(f.metadata().get_int("general.file_type"), 32);
  EXPECT_EQ(f32_at(f, "blk.0.attn_q_norm.weight", 3), bf16_to_f32(TinyCheckpoint::bf16(3, 3, 0)) + 1.0f);
  EXPECT_EQ(f32_at(f, "blk.0.ffn_norm.weight", 2), bf16_to_f32(TinyCheckpoint::bf16(4, 2, 0)) + 1.0f);
  EXPECT_EQ(f32_at(f, "blk.0.post_ffw_norm.weight", 0), bf16_to_f32(TinyCheckpoint::bf16(5, 0, 0)) + 1.0f);
  EXPECT_EQ(f32_at(f, "output_norm.weight", 1), bf16_to_f32(TinyCheckpoint::bf16(6, 1, 0)) + 1.0f);
  // bf16 -> bf16 weights are copied bit for bit.
  const auto* q = reinterpret_cast<const uint16_t*>(f.tensor_data(*f.find_tensor("blk.0.attn_q.weight")).data());
  EXPECT_EQ(q[3 * 16 + 9], TinyCheckpoint::bf16(2, 3, 9));
  // With one layer, layer 0 is a sliding-window layer either way, so the default pattern
  // (every 6th global) holds and no explicit pattern is written.
  EXPECT_EQ(f.metadata().find("gemma3.attention.sliding_window_pattern"), nullptr);
}

void expect_input_error(const std::filesystem::path& model, const std::string& fragment) {
  try {
    open_model_source(model);
    ADD_FAILURE() << "accepted " << model;
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

TEST(ConvertHf, ClearErrorsForUnsupportedInput) {
  ScratchDir dir;
  std::filesystem::create_directory(dir / "m");
  auto config = llama_config();
  config["architectures"] = {"MambaForCausalLM"};
  llama_tensors().write(dir / "m", config);
  expect_input_error(dir / "m", "unsupported architecture 'MambaForCausalLM'; supported: llama");

  llama_tensors().write(dir / "m", llama_config());
  std::filesystem::remove(dir / "m" / "model-00002-of-00002.safetensors");
  expect_input_error(dir / "m", "model-00002-of-00002.safetensors");

  TinyCheckpoint odd = llama_tensors();
  odd.tensors.push_back({"model.layers.0.mystery.weight", {4}, 99});
  odd.write(dir / "m", llama_config());
  expect_input_error(dir / "m", "'model.layers.0.mystery.weight' is not part of a llama model");

  expect_input_error(dir / "nothing-here", "no such file or folder");
  std::filesystem::create_directory(dir / "empty");
  expect_input_error(dir / "empty", "no config.json");
}

TEST(ConvertGguf, Stories260KToF16) {
  ScratchDir dir;
  GgufFile f = convert(test::stories260k(), dir / "s.gguf", GgmlType::F16);
  GgufFile src(test::stories260k().string());
  ASSERT_EQ(f.tensors().size(), src.tensors().size());
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const auto& t = f.tensors()[i];
    EXPECT_EQ(t.type, t.shape.size() == 1 ? GgmlType::F32 : GgmlType::F16) << t.name;
  }
  // One weight spot-checked: f16 of the f32 source value.
  const GgufTensorInfo* emb = src.find_tensor("token_embd.weight");
  float x;
  std::memcpy(&x, src.tensor_data(*emb).data() + 4 * 1000, 4);
  const auto* h = reinterpret_cast<const uint16_t*>(f.tensor_data(*f.find_tensor("token_embd.weight")).data());
  EXPECT_EQ(h[1000], f32_to_f16(x));
  EXPECT_EQ(f.metadata().get_string("tokenizer.ggml.model"), "llama");  // metadata carried over
}

// A quantized source tensor reads back as its dequantized rows, row by row, and convert writes
// those values (stories260K's Q8_0 copy of token_embd: rows of 64 = two blocks each).
TEST(ConvertGguf, QuantizedSourceDequantizesRowByRow) {
  ScratchDir dir;
  GgufFile src(test::stories260k().string());
  const GgufTensorInfo* emb = src.find_tensor("token_embd.weight");
  const int64_t width = static_cast<int64_t>(emb->shape[0]), rows = static_cast<int64_t>(emb->shape[1]);
  const auto* f32 = reinterpret_cast<const float*>(src.tensor_data(*emb).data());
  const size_t row_bytes = *ggml_row_bytes(GgmlType::Q8_0, static_cast<uint64_t>(width));
  std::vector<std::byte> q(row_bytes * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(GgmlType::Q8_0, f32 + r * width, q.data() + r * row_bytes, width, nullptr);
  GgufMetadata meta = src.metadata();
  const std::string path = (dir / "q8.gguf").string();
  write_gguf(path, meta, {{"token_embd.weight", GgmlType::Q8_0, emb->shape}},
             [&](size_t, GgufTensorSink& sink) { sink.write(q.data(), q.size()); });
  const ModelSource ms = open_model_source(path);
  std::vector<float> got(static_cast<size_t>(2 * width)), want(got.size());
  read_rows_f32(*ms.find("token_embd.weight"), 7, 2, got.data());
  dequantize_row(GgmlType::Q8_0, q.data() + 7 * row_bytes, want.data(), width);
  dequantize_row(GgmlType::Q8_0, q.data() + 8 * row_bytes, want.data() + width, width);
  EXPECT_EQ(got, want);

  GgufFile out = convert(path, dir / "f32.gguf", GgmlType::F32);
  const auto* back = reinterpret_cast<const float*>(out.tensor_data(*out.find_tensor("token_embd.weight")).data());
  EXPECT_TRUE(std::equal(want.begin(), want.end(), back + 7 * width));
}

}  // namespace
}  // namespace optiq
