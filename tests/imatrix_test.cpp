#include <gtest/gtest.h>

#include <cstring>

#include "calib/imatrix.h"
#include "io/gguf_writer.h"
#include "io/imatrix_file.h"
#include "model/model_source.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq {
namespace {

using test::ScratchDir;

Imatrix sample() {
  Imatrix m;
  m.entries["blk.0.attn_q.weight"] = {{1.0f, 4.0f, 9.0f, 0.5f}, {4}};
  m.entries["blk.0.ffn_down_exps.weight"] = {{2, 2, 6, 6, 7, 7}, {2, 0, 7}};  // 3 experts, one unused
  m.datasets = {"calib.txt"};
  m.chunk_count = 2;
  m.chunk_size = 2;
  return m;
}

TEST(ImatrixFile, GgufRoundTrip) {
  ScratchDir dir;
  write_imatrix_gguf((dir / "m.gguf").string(), sample());
  const Imatrix r = read_imatrix_file((dir / "m.gguf").string());
  EXPECT_FALSE(r.legacy);
  EXPECT_EQ(r.datasets, sample().datasets);
  EXPECT_EQ(r.chunk_count, 2);
  EXPECT_EQ(r.chunk_size, 2);
  ASSERT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.entries.at("blk.0.attn_q.weight").sums, sample().entries.at("blk.0.attn_q.weight").sums);
  EXPECT_EQ(r.entries.at("blk.0.ffn_down_exps.weight").counts, (std::vector<int64_t>{2, 0, 7}));
  GgufFile f((dir / "m.gguf").string());
  EXPECT_EQ(f.metadata().get_string("general.type"), "imatrix");
  ASSERT_NE(f.find_tensor("blk.0.ffn_down_exps.weight.in_sum2"), nullptr);
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down_exps.weight.in_sum2")->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(f.find_tensor("blk.0.ffn_down_exps.weight.counts")->shape, (std::vector<uint64_t>{1, 3}));
}

TEST(ImatrixFile, ImportanceIsSumsOverCountsPerMatrix) {
  const auto w = imatrix_importance(sample());
  EXPECT_EQ(w.at("blk.0.attn_q.weight"), (std::vector<float>{0.25f, 1.0f, 2.25f, 0.125f}));
  // expert 1 saw no tokens: neutral ones
  EXPECT_EQ(w.at("blk.0.ffn_down_exps.weight"), (std::vector<float>{1, 1, 1, 1, 1, 1}));
}

TEST(ImatrixFile, LegacyDatRoundTrip) {
  ScratchDir dir;
  write_imatrix_dat((dir / "m.dat").string(), sample());
  const Imatrix r = read_imatrix_file((dir / "m.dat").string());
  EXPECT_TRUE(r.legacy);
  EXPECT_EQ(r.chunk_count, 2);
  EXPECT_EQ(r.datasets, (std::vector<std::string>{"calib.txt"}));
  // ncall = ceil(max count / chunk_size): 4 / 2 = 2 for attn_q, ceil(7 / 2) = 4 for the experts.
  EXPECT_EQ(r.entries.at("blk.0.attn_q.weight").counts, (std::vector<int64_t>{2}));
  EXPECT_EQ(r.entries.at("blk.0.ffn_down_exps.weight").counts, (std::vector<int64_t>{4}));
  const auto w = imatrix_importance(r);
  const auto expect = imatrix_importance(sample());
  for (const auto& [name, v] : expect) {
    ASSERT_EQ(w.at(name).size(), v.size());
    for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(w.at(name)[i], v[i], 1e-6 * v[i]) << name << " " << i;
  }
}

TEST(ImatrixFile, DatWithoutTrailerAndEntriesWithoutData) {
  ScratchDir dir;
  Imatrix m = sample();
  m.entries["blk.1.attn_k.weight"] = {{1, 1}, {0}};  // never seen: left out of .dat
  write_imatrix_dat((dir / "m.dat").string(), m);
  EXPECT_EQ(read_imatrix_file((dir / "m.dat").string()).entries.size(), 2u);
  // The trailer (chunk count, dataset) is optional.
  auto bytes = test::read_file(dir / "m.dat");
  bytes.resize(bytes.size() - 4 - 4 - std::strlen("calib.txt"));
  test::write_file(dir / "short.dat", bytes);
  const Imatrix r = read_imatrix_file((dir / "short.dat").string());
  EXPECT_EQ(r.entries.size(), 2u);
  EXPECT_EQ(r.chunk_count, 0);
}

TEST(ImatrixFile, BrokenFilesAreInputErrors) {
  ScratchDir dir;
  write_imatrix_dat((dir / "m.dat").string(), sample());
  auto bytes = test::read_file(dir / "m.dat");
  for (size_t cut : {size_t{2}, size_t{6}, size_t{30}, size_t{50}}) {
    auto b = bytes;
    b.resize(cut);
    test::write_file(dir / "cut.dat", b);
    EXPECT_THROW(read_imatrix_file((dir / "cut.dat").string()), InputError) << cut;
  }
  test::write_file(dir / "zero.dat", std::vector<std::byte>(4, std::byte{0}));
  EXPECT_THROW(read_imatrix_file((dir / "zero.dat").string()), InputError);

  // GGUF: sums without counts, counts of the wrong type, a plain model.
  GgufMetadata md;
  write_gguf((dir / "nocounts.gguf").string(), md, {{"a.weight.in_sum2", GgmlType::F32, {4, 1}}},
             [](size_t, GgufTensorSink& s) { const float z[4] = {}; s.write(z, sizeof z); });
  EXPECT_THROW(read_imatrix_file((dir / "nocounts.gguf").string()), InputError);
  write_gguf((dir / "f16.gguf").string(), md,
             {{"a.weight.in_sum2", GgmlType::F32, {4, 1}}, {"a.weight.counts", GgmlType::F16, {1, 1}}},
             [](size_t i, GgufTensorSink& s) {
               const float z[4] = {};
               s.write(z, i == 0 ? sizeof z : 2);
             });
  EXPECT_THROW(read_imatrix_file((dir / "f16.gguf").string()), InputError);
  EXPECT_THROW(read_imatrix_file(test::stories260k().string()), InputError);
}

engine::Model load_stories() {
  return engine::load_model(open_model_source(test::stories260k()));
}

std::vector<int32_t> some_tokens(size_t n) {
  std::vector<int32_t> t(n);
  for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(3 + (i * 37) % 500);
  return t;
}

TEST(ImatrixCompute, CountsEveryBlockMatrixAndNotTheOutput) {
  const engine::Model model = load_stories();
  ImatrixOptions o;
  o.n_ctx = 32;
  o.bos = 1;
  const Imatrix m = compute_imatrix(model, some_tokens(100), o);  // 3 chunks of 32
  EXPECT_EQ(m.chunk_count, 3);
  EXPECT_EQ(m.chunk_size, 32);
  EXPECT_EQ(m.entries.size(), 5u * 7u);
  EXPECT_EQ(m.entries.count("output.weight"), 0u);
  const ImatrixEntry& down = m.entries.at("blk.2.ffn_down.weight");
  EXPECT_EQ(down.sums.size(), 172u);
  EXPECT_EQ(down.counts, (std::vector<int64_t>{96}));
  for (float v : down.sums) EXPECT_GE(v, 0.0f);
}

TEST(ImatrixCompute, SameResultWithAnyThreadCount) {
  const engine::Model model = load_stories();
  ImatrixOptions o;
  o.n_ctx = 16;
  o.max_chunks = 5;
  const Imatrix one = compute_imatrix(model, some_tokens(200), o);
  o.threads = 3;
  const Imatrix three = compute_imatrix(model, some_tokens(200), o);
  EXPECT_EQ(one.chunk_count, 5);
  for (const auto& [name, e] : one.entries) EXPECT_EQ(e.sums, three.entries.at(name).sums) << name;
}

TEST(ImatrixCompute, ShortTextsAndTinyChunks) {
  const engine::Model model = load_stories();
  ImatrixOptions o;
  o.n_ctx = 64;
  EXPECT_THROW(compute_imatrix(model, some_tokens(127), o), InputError);  // needs 2 x 64
  o.n_ctx = 8;  // llama-imatrix ignores products over fewer than 16 tokens
  EXPECT_TRUE(compute_imatrix(model, some_tokens(64), o).entries.empty());
}

}  // namespace
}  // namespace optiq
