#include <gtest/gtest.h>

#include "export/quantize_model.h"
#include "io/gguf.h"
#include "io/imatrix_file.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq {
namespace {

using test::run_optiq;
using test::ScratchDir;

std::string stories_gguf() { return test::stories260k().string(); }

TEST(QuantizeCli, WritesTheMixAndItsFileType) {
  ScratchDir dir;
  const auto out = (dir / "q.gguf").string();
  auto r = run_optiq("quantize " + stories_gguf() + " -o " + out + " --type q8_0 -t 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("f32 -> q8_0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("quant size"), std::string::npos);
  EXPECT_NE(r.output.find("5 of 48 tensor(s) required fallback"), std::string::npos) << r.output;
  GgufFile f(out);
  EXPECT_EQ(f.metadata().get_int("general.file_type"), 7);
  EXPECT_EQ(f.metadata().get_int("general.quantization_version"), 2);
  EXPECT_EQ(f.find_tensor("blk.0.attn_q.weight")->type, GgmlType::Q8_0);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down.weight")->type, GgmlType::F16);  // 172 columns
  EXPECT_EQ(f.find_tensor("blk.0.attn_norm.weight")->type, GgmlType::F32);
  EXPECT_EQ(dir.entries().size(), 1u);
}

TEST(QuantizeCli, ThreadCountDoesNotChangeTheBytes) {
  ScratchDir dir;
  for (const char* t : {"1", "3"}) {
    auto r = run_optiq("quantize " + stories_gguf() + " -o " + (dir / (std::string(t) + ".gguf")).string() +
                       " --type Q4_K_M -t " + t);
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  EXPECT_EQ(test::read_file(dir / "1.gguf"), test::read_file(dir / "3.gguf"));
}

TEST(QuantizeCli, RequantizesAQuantizedModel) {
  ScratchDir dir;
  ASSERT_EQ(run_optiq("quantize " + stories_gguf() + " -o " + (dir / "q8.gguf").string() + " --type Q8_0").exit_code, 0);
  auto r = run_optiq("quantize " + (dir / "q8.gguf").string() + " -o " + (dir / "q4.gguf").string() + " --type Q4_0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(GgufFile((dir / "q4.gguf").string()).find_tensor("blk.1.attn_q.weight")->type, GgmlType::Q4_0);
}

TEST(QuantizeCli, DryRunWritesNothing) {
  ScratchDir dir;
  auto r = run_optiq("quantize " + stories_gguf() + " -o " + (dir / "q.gguf").string() + " --type Q4_K_M --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("token_embd.weight"), std::string::npos);
  EXPECT_TRUE(dir.entries().empty());
  EXPECT_EQ(run_optiq("quantize " + stories_gguf() + " --type Q4_K_M --dry-run").exit_code, 0);
}

TEST(QuantizeCli, RepeatedTensorTypesBeforeTheModel) {
  auto r = run_optiq("quantize --tensor-type attn_q=q8_0 --tensor-type ffn_up=q5_1 " + stories_gguf() +
                     " --type Q4_0 --dry-run");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("f32 -> q8_0"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("f32 -> q5_1"), std::string::npos) << r.output;
}

TEST(QuantizeCli, BadInputGivesOneErrorAndExit2) {
  ScratchDir dir;
  const std::string base = "quantize " + stories_gguf() + " -o " + (dir / "q.gguf").string();
  for (const std::string args : {" --type Q9_K", " --type IQ2_XXS", " --type Q4_K_M --tensor-type 'attn(=q8_0'",
                                 " --type Q4_K_M --tensor-type attn_q", " --type Q4_K_M --output-tensor-type q7",
                                 " --type Q4_K_M --token-embedding-type q4_k", " --type Q4_K_M --imatrix /nonexistent",
                                 " --type Q4_K_M --tensor-type attn_q=q8_1"}) {
    auto r = run_optiq(base + args);
    EXPECT_EQ(r.exit_code, 2) << args << ": " << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << args << ": " << r.output;
  }
  EXPECT_EQ(run_optiq("quantize " + stories_gguf() + " --type Q4_0").exit_code, 2);  // no -o
  EXPECT_TRUE(dir.entries().empty());
}

TEST(QuantizeCli, ImatrixOfAnotherModelIsRefused) {
  ScratchDir dir;
  Imatrix other;
  other.entries["blk.0.attn_q.weight"] = {std::vector<float>(4096, 1.0f), {10}};  // wrong width
  write_imatrix_gguf((dir / "wide.gguf").string(), other);
  Imatrix foreign;
  foreign.entries["model.layers.0.q_proj"] = {std::vector<float>(64, 1.0f), {10}};
  write_imatrix_gguf((dir / "foreign.gguf").string(), foreign);
  for (const char* f : {"wide.gguf", "foreign.gguf"}) {
    auto r = run_optiq("quantize " + stories_gguf() + " -o " + (dir / "q.gguf").string() + " --type Q4_K_M --imatrix " +
                       (dir / f).string());
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("another model"), std::string::npos) << r.output;
  }
}

TEST(QuantizePlan, ImatrixEntriesAreAttachedToQuantizedTensorsOnly) {
  const ModelSource src = open_model_source(test::stories260k());
  QuantizeOptions o;
  o.recipe.mix = QuantMix::Q4_0;
  o.imatrix["blk.0.attn_q.weight"] = std::vector<float>(64, 1.0f);
  o.imatrix["blk.0.attn_norm.weight"] = std::vector<float>(64, 1.0f);
  const QuantizePlan p = plan_quantization(src, o);
  for (const auto& t : p.tensors) {
    if (t.source->name == "blk.0.attn_q.weight") EXPECT_NE(t.importance, nullptr);
    else EXPECT_EQ(t.importance, nullptr) << t.source->name;
  }
  EXPECT_EQ(p.file_type, 2u);
  EXPECT_GT(p.bytes_from, p.bytes_to);
}

}  // namespace
}  // namespace optiq
