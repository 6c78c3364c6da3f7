#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <sys/wait.h>
#include <unistd.h>

#include "io/gguf.h"
#include "io/gguf_writer.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq {
namespace {

using test::ScratchDir;

// Hand-assembled GGUF images for the validation tests.
class GgufBytes {
 public:
  template <class T>
  GgufBytes& put(T x) {
    const auto* p = reinterpret_cast<const std::byte*>(&x);
    bytes.insert(bytes.end(), p, p + sizeof(T));
    return *this;
  }
  GgufBytes& str(const std::string& s) {
    put<uint64_t>(s.size());
    for (char c : s) bytes.push_back(static_cast<std::byte>(c));
    return *this;
  }
  GgufBytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    return put<uint32_t>(0x46554747).put<uint32_t>(version).put<uint64_t>(n_tensors).put<uint64_t>(n_kv);
  }
  GgufBytes& tensor(const std::string& name, std::vector<uint64_t> shape, uint32_t type, uint64_t offset) {
    str(name).put<uint32_t>(static_cast<uint32_t>(shape.size()));
    for (auto d : shape) put<uint64_t>(d);
    return put<uint32_t>(type).put<uint64_t>(offset);
  }
  GgufBytes& pad_to(size_t alignment) {
    while (bytes.size() % alignment) bytes.push_back(std::byte{0});
    return *this;
  }
  GgufBytes& zeros(size_t n) {
    bytes.insert(bytes.end(), n, std::byte{0});
    return *this;
  }
  std::vector<std::byte> bytes;
};

// Parses and returns the error message; fails the test if parsing succeeds.
std::string gguf_parse_error(const std::vector<std::byte>& bytes) {
  try {
    parse_gguf(bytes, "t.gguf");
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "malformed GGUF was accepted";
  return "";
}

// Two f32 tensors of 8 elements, aligned; the base for the mutation tests.
GgufBytes valid_two_tensor_file() {
  GgufBytes g;
  g.header(2, 1).str("general.architecture").put<uint32_t>(8).str("llama");
  g.tensor("a", {8}, 0, 0).tensor("b", {4, 2}, 0, 32).pad_to(32).zeros(64);
  return g;
}

TEST(GgufRead, ValidHandMadeFile) {
  GgufContents c = parse_gguf(valid_two_tensor_file().bytes, "t.gguf");
  EXPECT_EQ(c.version, 3u);
  ASSERT_EQ(c.tensors.size(), 2u);
  EXPECT_EQ(c.tensors[1].shape, (std::vector<uint64_t>{4, 2}));
  EXPECT_EQ(c.tensors[1].n_bytes, 32u);
  EXPECT_EQ(c.metadata.get_string("general.architecture"), "llama");
}

TEST(GgufRead, Version2IsAccepted) {
  GgufBytes g;
  g.header(0, 0, 2);
  EXPECT_EQ(parse_gguf(g.bytes, "t.gguf").version, 2u);
}

TEST(GgufRead, Stories260KHasExpectedShape) {
  GgufFile f(test::stories260k().string());
  EXPECT_EQ(f.tensors().size(), 48u);
  EXPECT_EQ(f.metadata().get_string("general.architecture"), "llama");
  EXPECT_EQ(f.metadata().get_int("llama.embedding_length"), 64);
  EXPECT_EQ(f.metadata().get_int("llama.block_count"), 5);
  const GgufTensorInfo* down = f.find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<uint64_t>{172, 64}));
}

TEST(GgufRoundTrip, Stories260KIsByteIdentical) {
  ScratchDir dir;
  GgufFile in(test::stories260k().string());
  std::vector<GgufTensorDecl> decls;
  for (const auto& t : in.tensors()) decls.push_back({t.name, t.type, t.shape});
  const auto out_path = (dir / "copy.gguf").string();
  write_gguf(out_path, in.metadata(), decls, [&](size_t i, GgufTensorSink& sink) {
    auto data = in.tensor_data(in.tensors()[i]);
    sink.write(data.data(), data.size());
  });
  GgufFile out(out_path);
  ASSERT_EQ(out.metadata().entries().size(), in.metadata().entries().size());
  for (size_t i = 0; i < in.metadata().entries().size(); ++i) {
    EXPECT_EQ(out.metadata().entries()[i].first, in.metadata().entries()[i].first);
    EXPECT_TRUE(out.metadata().entries()[i].second == in.metadata().entries()[i].second)
        << in.metadata().entries()[i].first;
  }
  ASSERT_EQ(out.tensors().size(), in.tensors().size());
  for (size_t i = 0; i < in.tensors().size(); ++i) {
    auto a = in.tensor_data(in.tensors()[i]), b = out.tensor_data(out.tensors()[i]);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size()), 0) << in.tensors()[i].name;
  }
  // The layout rules match llama.cpp's writer, so the whole file comes back unchanged.
  EXPECT_EQ(test::read_file(out_path), test::read_file(test::stories260k()));
}

TEST(GgufRoundTrip, EveryValueTypeAndNestedArrays) {
  ScratchDir dir;
  GgufMetadata m;
  m.set("u8", GgufValue::of<uint8_t>(200));
  m.set("i8", GgufValue::of<int8_t>(-100));
  m.set("u16", GgufValue::of<uint16_t>(60000));
  m.set("i16", GgufValue::of<int16_t>(-30000));
  m.set("u32", GgufValue::of<uint32_t>(4000000000u));
  m.set("i32", GgufValue::of<int32_t>(-2000000000));
  m.set("f32", GgufValue::of<float>(1.5f));
  m.set("bool", GgufValue::of<bool>(true));
  m.set("string", GgufValue::string("h\xc3\xa9llo\n"));
  m.set("u64", GgufValue::of<uint64_t>(UINT64_MAX));
  m.set("i64", GgufValue::of<int64_t>(INT64_MIN));
  m.set("f64", GgufValue::of<double>(-2.25));
  m.set("strings", GgufValue::array_of<std::string>({"a", "", "ccc"}));
  m.set("nested", GgufValue::array(GgufValueType::ARRAY,
                                   {GgufValue::array_of<int32_t>({1, 2}), GgufValue::array_of<int32_t>({})}));
  m.set("general.alignment", GgufValue::of<uint32_t>(64));
  const auto path = (dir / "kv.gguf").string();
  write_gguf(path, m, {{"t", GgmlType::Q4_0, {64, 3}}}, [](size_t, GgufTensorSink& sink) {
    std::vector<std::byte> data(sink.expected(), std::byte{7});
    sink.write(data.data(), data.size());
  });
  GgufFile f(path);
  ASSERT_EQ(f.metadata().size(), m.size());
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_EQ(f.metadata().entries()[i].first, m.entries()[i].first);
    EXPECT_TRUE(f.metadata().entries()[i].second == m.entries()[i].second) << m.entries()[i].first;
  }
  EXPECT_EQ(f.contents().alignment, 64u);
  EXPECT_EQ(f.contents().data_offset % 64, 0u);
  EXPECT_EQ(f.tensors()[0].n_bytes, 3u * 2 * 18);  // 3 rows × 2 blocks × 18 bytes
}

TEST(GgufValidate, TruncatedAtEveryOffsetIsAnError) {
  const auto full = valid_two_tensor_file().bytes;
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<std::byte> cut(full.begin(), full.begin() + static_cast<long>(n));
    EXPECT_THROW(parse_gguf(cut, "t.gguf"), InputError) << "accepted a file cut at " << n;
  }
}

TEST(GgufValidate, BadMagicAndVersions) {
  auto g = valid_two_tensor_file();
  g.bytes[0] = std::byte{'X'};
  EXPECT_NE(gguf_parse_error(g.bytes).find("not a GGUF file"), std::string::npos);
  GgufBytes v1;
  v1.header(0, 0, 1);
  EXPECT_NE(gguf_parse_error(v1.bytes).find("version 1"), std::string::npos);
  GgufBytes be;
  be.header(0, 0, 0x03000000);
  EXPECT_NE(gguf_parse_error(be.bytes).find("big-endian"), std::string::npos);
}

TEST(GgufValidate, HostileCountsAndLengthsDoNotAllocate) {
  GgufBytes many_kv;
  many_kv.header(0, UINT64_MAX / 2);
  EXPECT_NE(gguf_parse_error(many_kv.bytes).find("metadata count"), std::string::npos);
  GgufBytes many_tensors;
  many_tensors.header(1ull << 60, 0);
  EXPECT_NE(gguf_parse_error(many_tensors.bytes).find("tensor count"), std::string::npos);
  GgufBytes long_key;
  long_key.header(0, 1).put<uint64_t>(1ull << 62).zeros(16);
  EXPECT_NE(gguf_parse_error(long_key.bytes).find("exceeds"), std::string::npos);
  GgufBytes long_array;
  long_array.header(0, 1).str("k").put<uint32_t>(9).put<uint32_t>(4).put<uint64_t>(1ull << 40);
  EXPECT_NE(gguf_parse_error(long_array.bytes).find("array element count"), std::string::npos);
}

TEST(GgufValidate, DeeplyNestedArraysAreRejected) {
  GgufBytes g;
  g.header(0, 1).str("k").put<uint32_t>(9);
  for (int i = 0; i < 20; ++i) g.put<uint32_t>(9).put<uint64_t>(1);
  g.put<uint32_t>(0).put<uint64_t>(0);
  EXPECT_NE(gguf_parse_error(g.bytes).find("nested deeper"), std::string::npos);
}

TEST(GgufValidate, BadValuesAndKeys) {
  GgufBytes bad_type;
  bad_type.header(0, 1).str("k").put<uint32_t>(13).put<uint8_t>(0);
  EXPECT_NE(gguf_parse_error(bad_type.bytes).find("not a GGUF value type"), std::string::npos);
  GgufBytes bad_bool;
  bad_bool.header(0, 1).str("k").put<uint32_t>(7).put<uint8_t>(2);
  EXPECT_NE(gguf_parse_error(bad_bool.bytes).find("neither 0 nor 1"), std::string::npos);
  GgufBytes dup;
  dup.header(0, 2).str("k").put<uint32_t>(0).put<uint8_t>(1).str("k").put<uint32_t>(0).put<uint8_t>(2);
  EXPECT_NE(gguf_parse_error(dup.bytes).find("duplicate metadata key"), std::string::npos);
  GgufBytes align;
  align.header(0, 1).str("general.alignment").put<uint32_t>(4).put<uint32_t>(24);
  EXPECT_NE(gguf_parse_error(align.bytes).find("power of two"), std::string::npos);
  GgufBytes align_type;
  align_type.header(0, 1).str("general.alignment").put<uint32_t>(10).put<uint64_t>(32);
  EXPECT_NE(gguf_parse_error(align_type.bytes).find("must be a u32"), std::string::npos);
}

// Builds a one-KV file with the given tensor infos and data bytes.
std::vector<std::byte> with_tensors(const std::function<void(GgufBytes&)>& infos, size_t n_tensors,
                                    size_t data_bytes) {
  GgufBytes g;
  g.header(n_tensors, 0);
  infos(g);
  g.pad_to(32).zeros(data_bytes);
  return g.bytes;
}

TEST(GgufValidate, TensorInfoErrors) {
  auto err = [](const std::function<void(GgufBytes&)>& infos, size_t n, size_t data) {
    return gguf_parse_error(with_tensors(infos, n, data));
  };
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {8}, 0, 0).tensor("a", {8}, 0, 32); }, 2, 64)
                .find("duplicate tensor name"), std::string::npos);
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {8}, 0, 0).tensor("b", {16}, 0, 32); }, 2, 64)
                .find("runs past the end"), std::string::npos);
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {16}, 0, 0).tensor("b", {8}, 0, 32); }, 2, 96)
                .find("overlaps"), std::string::npos);
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {8}, 4, 0); }, 1, 64).find("unknown ggml type id 4"),
            std::string::npos);
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {8}, 0, 16); }, 1, 64).find("not a multiple of the alignment"),
            std::string::npos);
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {1, 1, 1, 1, 1}, 0, 0); }, 1, 64).find("dimensions"),
            std::string::npos);
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {1ull << 40, 1ull << 40}, 0, 0); }, 1, 64).find("overflows"),
            std::string::npos);
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {48}, 2, 0); }, 1, 64).find("block size 32"),
            std::string::npos);
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {8}, 0, UINT64_MAX - 31); }, 1, 64).find("runs past"),
            std::string::npos);
  // 2^62 f32 elements fit int64 as a count but not as bytes.
  EXPECT_NE(err([](GgufBytes& g) { g.tensor("a", {1ull << 62}, 0, 0); }, 1, 64).find("byte size overflows"),
            std::string::npos);
}

TEST(GgufValidate, FileEndingBeforeItsDataSection) {
  GgufBytes g;
  g.header(1, 0).tensor("empty", {0}, 0, 0);  // zero bytes of data, but the section must exist
  EXPECT_NE(gguf_parse_error(g.bytes).find("ends before its data section"), std::string::npos);
}

TEST(GgufValidate, AlignmentAboveOneMegabyteIsRejected) {
  GgufBytes g;
  g.header(0, 1).str("general.alignment").put<uint32_t>(4).put<uint32_t>(1u << 31);
  EXPECT_NE(gguf_parse_error(g.bytes).find("larger than"), std::string::npos);
}

TEST(GgufValidate, ErrorNamesFileAndOffset) {
  GgufBytes g;
  g.header(0, 1).str("k").put<uint32_t>(7).put<uint8_t>(5);
  try {
    parse_gguf(g.bytes, "model.gguf");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.file(), "model.gguf");
    ASSERT_TRUE(e.offset().has_value());
    EXPECT_EQ(*e.offset(), g.bytes.size() - 1);  // the bool byte itself
  }
}

TEST(GgufWrite, RejectsInvalidDeclarationsBeforeCreatingAFile) {
  ScratchDir dir;
  auto path = (dir / "x.gguf").string();
  auto noop = [](size_t, GgufTensorSink&) {};
  EXPECT_THROW(write_gguf(path, {}, {{"a", GgmlType::Q4_0, {33}}}, noop), InputError);
  EXPECT_THROW(write_gguf(path, {}, {{"a", GgmlType::F32, {1}}, {"a", GgmlType::F32, {1}}}, noop), InputError);
  EXPECT_THROW(write_gguf(path, {}, {{std::string(64, 'n'), GgmlType::F32, {1}}}, noop), InputError);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(GgufWrite, FailureMidWayLeavesNothing) {
  ScratchDir dir;
  auto path = (dir / "x.gguf").string();
  EXPECT_THROW(write_gguf(path, {}, {{"a", GgmlType::F32, {4}}, {"b", GgmlType::F32, {4}}},
                          [](size_t i, GgufTensorSink& sink) {
                            if (i == 1) throw std::runtime_error("disk on fire");
                            float x[4] = {};
                            sink.write(x, sizeof x);
                          }),
               std::runtime_error);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(GgufWrite, WrongByteCountIsCaught) {
  ScratchDir dir;
  EXPECT_THROW(write_gguf((dir / "x.gguf").string(), {}, {{"a", GgmlType::F32, {4}}},
                          [](size_t, GgufTensorSink& sink) {
                            float x[2] = {};
                            sink.write(x, sizeof x);
                          }),
               std::logic_error);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(GgufWrite, InterruptedBySigintLeavesNoFile) {
  ScratchDir dir;
  auto path = (dir / "x.gguf").string();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    write_gguf(path, {}, {{"a", GgmlType::F32, {1024}}, {"b", GgmlType::F32, {1024}}},
               [](size_t i, GgufTensorSink& sink) {
                 std::vector<float> x(1024);
                 sink.write(x.data(), x.size() * 4);
                 if (i == 1) ::raise(SIGINT);  // as if the user pressed Ctrl-C mid-write
               });
    ::_exit(0);  // not reached: SIGINT terminates the child
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(dir.entries().empty()) << "left: " << (dir.entries().empty() ? "" : dir.entries()[0]);
}

}  // namespace
}  // namespace optiq
