#include <gtest/gtest.h>

#include "quant/recipe.h"
#include "util/error.h"

namespace optiq {
namespace {

using G = GgmlType;

// A dense llama-like model: token_embd, output (unless tied), and per layer q/k/v/o, the three
// FFN matrices and two norms, with rows of `width` (ffn_down: `ff`).
std::vector<RecipeTensor> dense_model(int n_layer, uint64_t width = 256, uint64_t ff = 512, bool tied = false) {
  std::vector<RecipeTensor> t;
  t.push_back({"token_embd.weight", {width, 1000}, G::F16});
  if (!tied) t.push_back({"output.weight", {width, 1000}, G::F16});
  t.push_back({"output_norm.weight", {width}, G::F32});
  for (int i = 0; i < n_layer; ++i) {
    const std::string b = "blk." + std::to_string(i) + ".";
    for (const char* n : {"attn_q", "attn_output"}) t.push_back({b + n + ".weight", {width, width}, G::F16});
    for (const char* n : {"attn_k", "attn_v"}) t.push_back({b + n + ".weight", {width, width / 4}, G::F16});
    for (const char* n : {"ffn_gate", "ffn_up"}) t.push_back({b + n + ".weight", {width, ff}, G::F16});
    t.push_back({b + "ffn_down.weight", {ff, width}, G::F16});
    t.push_back({b + "attn_norm.weight", {width}, G::F32});
    t.push_back({b + "ffn_norm.weight", {width}, G::F32});
  }
  sort_like_llama_cpp(t);
  return t;
}

RecipeModel llama_model(int n_layer, int n_head = 8, int n_head_kv = 2) {
  RecipeModel m;
  m.arch = "llama";
  m.n_layer = n_layer;
  m.n_head = n_head;
  m.n_head_kv = n_head_kv;
  return m;
}

// name -> chosen type
std::map<std::string, G> plan(const RecipeModel& m, const RecipeOptions& o, const std::vector<RecipeTensor>& t) {
  const auto choices = plan_tensor_types(m, o, t);
  std::map<std::string, G> out;
  for (size_t i = 0; i < t.size(); ++i) out[t[i].name] = choices[i].type;
  return out;
}

RecipeOptions mix(QuantMix m) {
  RecipeOptions o;
  o.mix = m;
  return o;
}

std::string blk(int i, const char* name) { return "blk." + std::to_string(i) + "." + name + ".weight"; }

TEST(Recipe, MixNamesAsLlamaQuantizeAcceptsThem) {
  EXPECT_EQ(quant_mix_from_name("Q4_K_M"), QuantMix::Q4_K_M);
  EXPECT_EQ(quant_mix_from_name("q4_k_m"), QuantMix::Q4_K_M);
  EXPECT_EQ(quant_mix_from_name("Q4_K"), QuantMix::Q4_K_M);  // alias
  EXPECT_EQ(quant_mix_from_name("q3_k"), QuantMix::Q3_K_M);
  EXPECT_EQ(quant_mix_from_name("15"), QuantMix::Q4_K_M);
  EXPECT_EQ(quant_mix_from_name("bf16"), QuantMix::BF16);
  EXPECT_EQ(quant_mix_name(QuantMix::Q5_K_M), "Q5_K_M");
  EXPECT_EQ(quant_mix_default_type(QuantMix::Q3_K_L), G::Q3_K);
  EXPECT_FALSE(quant_mix_from_name("IQ2_XXS"));  // optiq cannot quantize IQ2 yet
  EXPECT_FALSE(quant_mix_from_name("Q9_K"));
  EXPECT_FALSE(quant_mix_from_name("4"));  // retired ftype
  EXPECT_FALSE(quant_mix_from_name(""));
}

TEST(Recipe, NormsAndVectorsStayAndOutputGetsQ6K) {
  const auto p = plan(llama_model(8), mix(QuantMix::Q4_0), dense_model(8));
  EXPECT_EQ(p.at("output_norm.weight"), G::F32);
  EXPECT_EQ(p.at(blk(3, "attn_norm")), G::F32);
  EXPECT_EQ(p.at("output.weight"), G::Q6_K);
  EXPECT_EQ(p.at("token_embd.weight"), G::Q4_0);
  EXPECT_EQ(p.at(blk(0, "ffn_down")), G::Q4_0);  // the Q4_1 guard needs an imatrix
}

TEST(Recipe, TiedEmbeddingsTakeTheOutputRule) {
  const auto p = plan(llama_model(8), mix(QuantMix::Q4_K_M), dense_model(8, 256, 512, /*tied=*/true));
  EXPECT_EQ(p.at("token_embd.weight"), G::Q6_K);
  const auto untied = plan(llama_model(8), mix(QuantMix::Q4_K_M), dense_model(8));
  EXPECT_EQ(untied.at("token_embd.weight"), G::Q4_K);
}

TEST(Recipe, MoreBitsLayerPattern) {
  // 8 layers: layers < 1, >= 7 and (i - 1) % 3 == 2 get more bits: 0, 3, 6, 7.
  const auto p = plan(llama_model(8), mix(QuantMix::Q4_K_M), dense_model(8));
  for (int i = 0; i < 8; ++i) {
    const bool more = i == 0 || i == 3 || i == 6 || i == 7;
    EXPECT_EQ(p.at(blk(i, "attn_v")), more ? G::Q6_K : G::Q4_K) << i;
    EXPECT_EQ(p.at(blk(i, "ffn_down")), more ? G::Q6_K : G::Q4_K) << i;
    EXPECT_EQ(p.at(blk(i, "attn_q")), G::Q4_K) << i;
  }
}

TEST(Recipe, Q3KMRules) {
  const auto p = plan(llama_model(16), mix(QuantMix::Q3_K_M), dense_model(16));
  EXPECT_EQ(p.at(blk(0, "attn_v")), G::Q5_K);  // first two attn_v
  EXPECT_EQ(p.at(blk(1, "attn_v")), G::Q5_K);
  EXPECT_EQ(p.at(blk(2, "attn_v")), G::Q4_K);
  EXPECT_EQ(p.at(blk(0, "ffn_down")), G::Q5_K);  // layer < n/16
  EXPECT_EQ(p.at(blk(5, "ffn_down")), G::Q4_K);
  EXPECT_EQ(p.at(blk(5, "attn_output")), G::Q4_K);
  EXPECT_EQ(p.at(blk(5, "ffn_up")), G::Q3_K);
}

TEST(Recipe, GroupedQueryAttentionDecidesQ2KAttnV) {
  // n_gqa = n_head / n_head_kv: 2 and 4.
  EXPECT_EQ(plan(llama_model(8, 8, 4), mix(QuantMix::Q2_K), dense_model(8)).at(blk(4, "attn_v")), G::Q3_K);
  EXPECT_EQ(plan(llama_model(8, 8, 2), mix(QuantMix::Q2_K), dense_model(8)).at(blk(4, "attn_v")), G::Q4_K);
  EXPECT_EQ(plan(llama_model(8, 8, 4), mix(QuantMix::IQ4_XS), dense_model(8)).at(blk(4, "attn_v")), G::IQ4_XS);
  EXPECT_EQ(plan(llama_model(8, 8, 2), mix(QuantMix::IQ4_XS), dense_model(8)).at(blk(4, "attn_v")), G::Q5_K);
  EXPECT_EQ(plan(llama_model(8, 8, 4), mix(QuantMix::IQ4_XS), dense_model(8)).at(blk(0, "ffn_down")), G::Q5_K);
}

TEST(Recipe, ImatrixChangesSomeRules) {
  RecipeOptions o = mix(QuantMix::Q4_0);
  o.has_imatrix = true;
  const auto p = plan(llama_model(16), o, dense_model(16));
  EXPECT_EQ(p.at(blk(1, "ffn_down")), G::Q4_1);  // layers < n/8
  EXPECT_EQ(p.at(blk(2, "ffn_down")), G::Q4_0);
  RecipeOptions x = mix(QuantMix::IQ4_XS);
  x.has_imatrix = true;
  EXPECT_EQ(plan(llama_model(16, 8, 2), x, dense_model(16)).at(blk(0, "ffn_down")), G::IQ4_XS);
}

TEST(Recipe, SeventyBAndFalconAndMoE) {
  RecipeModel big = llama_model(80, 64, 8);
  big.is_70b = true;
  EXPECT_EQ(plan(big, mix(QuantMix::Q4_K_M), dense_model(80)).at(blk(20, "attn_v")), G::Q5_K);
  EXPECT_EQ(recipe_model_from_metadata([] {
              GgufMetadata md;
              md.set("general.architecture", GgufValue::string("llama"));
              md.set("llama.block_count", GgufValue::of<uint32_t>(80));
              md.set("llama.attention.head_count", GgufValue::of<uint32_t>(64));
              md.set("llama.attention.head_count_kv", GgufValue::of<uint32_t>(8));
              return md;
            }(), "m").is_70b, true);

  RecipeModel falcon = llama_model(8);
  falcon.arch = "falcon";
  const auto pf = plan(falcon, mix(QuantMix::Q4_K_M), dense_model(8));
  EXPECT_EQ(pf.at("output.weight"), G::Q8_0);
  EXPECT_EQ(pf.at(blk(2, "ffn_down")), G::Q4_K);  // falcon: Q5_K only on more-bits layers
  EXPECT_EQ(pf.at(blk(3, "ffn_down")), G::Q5_K);

  RecipeModel moe = llama_model(4);
  moe.n_expert = 8;
  std::vector<RecipeTensor> t = {{"blk.0.attn_v.weight", {256, 64}, G::F16},
                                 {"blk.0.attn_k.weight", {256, 64}, G::F16},
                                 {"blk.0.ffn_gate_inp.weight", {256, 8}, G::F32},
                                 {"blk.3.ffn_down_exps.weight", {512, 256, 8}, G::F16}};
  sort_like_llama_cpp(t);
  const auto pm = plan(moe, mix(QuantMix::Q4_K_M), t);
  EXPECT_EQ(pm.at("blk.0.attn_v.weight"), G::Q8_0);
  EXPECT_EQ(pm.at("blk.0.attn_k.weight"), G::Q8_0);
  EXPECT_EQ(pm.at("blk.0.ffn_gate_inp.weight"), G::F32);  // routers are never quantized
  EXPECT_EQ(pm.at("blk.3.ffn_down_exps.weight"), G::Q6_K);  // layer 3 of 4 read from the name
  EXPECT_THROW(plan_tensor_types(moe, mix(QuantMix::Q4_K_M), {{"ffn_down_exps.weight", {512, 256, 8}, G::F16}}),
               InputError);
}

TEST(Recipe, FallbackWhenRowsAreNotWholeBlocks) {
  std::vector<RecipeTensor> t = {{"blk.0.attn_q.weight", {64, 64}, G::F32},
                                 {"blk.0.ffn_down.weight", {172, 64}, G::F32},
                                 {"blk.0.ffn_up.weight", {64, 172}, G::F32}};
  const auto c = plan_tensor_types(llama_model(1, 8, 4), mix(QuantMix::Q4_K_S), t);
  EXPECT_EQ(c[0].type, G::Q5_0);  // Q4_K -> Q5_0
  EXPECT_TRUE(c[0].fell_back);
  EXPECT_EQ(c[1].type, G::F16);  // 172 is not a multiple of 32 either
  EXPECT_TRUE(c[1].fell_back);
  const auto x = plan_tensor_types(llama_model(1, 8, 4), mix(QuantMix::IQ4_XS), t);
  EXPECT_EQ(x[0].type, G::IQ4_NL);
  const auto q8 = plan_tensor_types(llama_model(1, 8, 4), mix(QuantMix::Q8_0), t);
  EXPECT_EQ(q8[1].type, G::F16);
  EXPECT_FALSE(q8[0].fell_back);
}

TEST(Recipe, UserOverrides) {
  RecipeOptions o = mix(QuantMix::Q4_K_M);
  o.tensor_types.push_back(parse_tensor_type_override("ATTN_Q=q8_0"));  // lower-cased
  o.tensor_types.push_back(parse_tensor_type_override("attn=q5_0"));
  o.output_tensor_type = G::Q4_K;
  o.token_embedding_type = G::Q8_0;
  const auto p = plan(llama_model(8), o, dense_model(8));
  EXPECT_EQ(p.at(blk(2, "attn_q")), G::Q8_0);  // first match wins
  EXPECT_EQ(p.at(blk(2, "attn_v")), G::Q5_0);
  EXPECT_EQ(p.at(blk(2, "ffn_up")), G::Q4_K);
  EXPECT_EQ(p.at("output.weight"), G::Q4_K);
  EXPECT_EQ(p.at("token_embd.weight"), G::Q8_0);
  // Manual types skip the rules, so the more-bits counter does not advance for them:
  // ffn_down keeps the pattern, attn_v is all overridden.
  EXPECT_EQ(p.at(blk(3, "ffn_down")), G::Q6_K);

  RecipeOptions pure = mix(QuantMix::Q4_K_M);
  pure.pure = true;
  const auto pp = plan(llama_model(8), pure, dense_model(8));
  EXPECT_EQ(pp.at(blk(0, "attn_v")), G::Q4_K);
  EXPECT_EQ(pp.at("output.weight"), G::Q4_K);

  RecipeOptions f16 = mix(QuantMix::F16);  // patterns apply to quantized mixes only
  f16.tensor_types.push_back(parse_tensor_type_override("attn_q=q8_0"));
  EXPECT_EQ(plan(llama_model(8), f16, dense_model(8)).at(blk(0, "attn_q")), G::F16);
}

TEST(Recipe, BadOverridesAreInputErrors) {
  EXPECT_THROW(parse_tensor_type_override("attn_q"), InputError);
  EXPECT_THROW(parse_tensor_type_override("=q8_0"), InputError);
  EXPECT_THROW(parse_tensor_type_override("attn_q="), InputError);
  EXPECT_THROW(parse_tensor_type_override("attn_q=q9_9"), InputError);
  EXPECT_THROW(parse_tensor_type_override("attn_(q=q8_0"), InputError);
  RecipeOptions o = mix(QuantMix::Q4_K_M);
  o.token_embedding_type = G::Q4_K;
  EXPECT_THROW(plan_tensor_types(llama_model(1), o, {{"token_embd.weight", {64, 512}, G::F32}}), InputError);
  EXPECT_THROW(recipe_model_from_metadata(GgufMetadata{}, "m"), InputError);
}

TEST(Recipe, Q2KSRequiresAnImatrix) {
  const auto t = dense_model(8);
  const auto c = plan_tensor_types(llama_model(8), mix(QuantMix::Q2_K_S), t);
  for (size_t i = 0; i < t.size(); ++i) {
    const bool q2k_blk = c[i].type == G::Q2_K && t[i].name.starts_with("blk.");
    EXPECT_EQ(c[i].requires_imatrix, q2k_blk) << t[i].name;
  }
}

TEST(Recipe, LlamaCppOrder) {
  std::vector<RecipeTensor> t = {{"blk.10.attn_q.weight", {1}, G::F32}, {"blk.2.ffn_up.weight", {1}, G::F32},
                                 {"output.weight", {1}, G::F32},        {"blk.2.attn_k.weight", {1}, G::F32},
                                 {"output_norm.weight", {1}, G::F32},   {"token_embd.weight", {1}, G::F32}};
  sort_like_llama_cpp(t);
  std::vector<std::string> names;
  for (const auto& x : t) names.push_back(x.name);
  EXPECT_EQ(names, (std::vector<std::string>{"output.weight", "output_norm.weight", "token_embd.weight",
                                             "blk.2.attn_k.weight", "blk.2.ffn_up.weight", "blk.10.attn_q.weight"}));
}

}  // namespace
}  // namespace optiq
