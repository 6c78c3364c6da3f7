#include <gtest/gtest.h>

#include <cstring>

#include "io/safetensors.h"
#include "test_util.h"
#include "util/error.h"

namespace optiq {
namespace {

using test::ScratchDir;

std::vector<std::byte> image(const std::string& header, size_t data_bytes) {
  std::vector<std::byte> b(8 + header.size() + data_bytes);
  uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

std::string safetensors_parse_error(const std::vector<std::byte>& bytes) {
  try {
    parse_safetensors(bytes, "m.safetensors");
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "malformed safetensors was accepted";
  return "";
}

TEST(Safetensors, WriteThenReadBack) {
  ScratchDir dir;
  const auto path = (dir / "m.safetensors").string();
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {0x3f80, 0x4000, 0x4040};
  write_safetensors(path, {{"format", "pt"}},
                    {{"a", SafetensorsDtype::F32, {2, 3}}, {"b", SafetensorsDtype::BF16, {3}}},
                    [&](size_t i, const SafetensorsWriteFn& write) {
                      if (i == 0) {
                        write(a.data(), 8);  // in two pieces, to exercise streaming
                        write(a.data() + 2, 16);
                      } else {
                        write(b.data(), 6);
                      }
                    });
  SafetensorsFile f(path);
  EXPECT_EQ(f.contents().metadata.at("format"), "pt");
  EXPECT_EQ(f.contents().data_offset % 8, 0u);
  const SafetensorsTensor* ta = f.find("a");
  ASSERT_NE(ta, nullptr);
  EXPECT_EQ(ta->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(std::memcmp(f.data(*ta).data(), a.data(), 24), 0);
  const SafetensorsTensor* tb = f.find("b");
  ASSERT_NE(tb, nullptr);
  EXPECT_EQ(tb->dtype, SafetensorsDtype::BF16);
  EXPECT_EQ(std::memcmp(f.data(*tb).data(), b.data(), 6), 0);
}

TEST(Safetensors, WriterChecksByteCountsAndLeavesNothingOnFailure) {
  ScratchDir dir;
  EXPECT_THROW(write_safetensors((dir / "m.safetensors").string(), {}, {{"a", SafetensorsDtype::F32, {2}}},
                                 [](size_t, const SafetensorsWriteFn& write) {
                                   float x = 0;
                                   write(&x, 4);
                                 }),
               std::logic_error);
  EXPECT_TRUE(dir.entries().empty());
}

TEST(Safetensors, ScalarAndEmptyTensors) {
  auto c = parse_safetensors(image(R"({"s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                                   R"("e":{"dtype":"F16","shape":[0,5],"data_offsets":[4,4]}})", 4),
                             "m");
  ASSERT_EQ(c.tensors.size(), 2u);
}

TEST(Safetensors, HeaderRules) {
  EXPECT_NE(safetensors_parse_error({}).find("too small"), std::string::npos);
  auto huge = image("{}", 0);
  uint64_t big = 200'000'000;
  std::memcpy(huge.data(), &big, 8);
  EXPECT_NE(safetensors_parse_error(huge).find("100 MB"), std::string::npos);
  auto past = image("{}", 0);
  uint64_t n = 50;
  std::memcpy(past.data(), &n, 8);
  EXPECT_NE(safetensors_parse_error(past).find("runs past the end"), std::string::npos);
  EXPECT_NE(safetensors_parse_error(image("[1,2]", 0)).find("not a JSON object"), std::string::npos);
  EXPECT_NE(safetensors_parse_error(image("{\"a\":", 0)).find("not valid JSON"), std::string::npos);
}

TEST(Safetensors, TensorRules) {
  auto err = [](const std::string& h, size_t data) { return safetensors_parse_error(image(h, data)); };
  EXPECT_NE(err(R"({"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}})", 1).find("unknown dtype 'Q4'"),
            std::string::npos);
  EXPECT_NE(err(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", 4).find("does not match"),
            std::string::npos);
  EXPECT_NE(err(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4).find("past the"),
            std::string::npos);
  EXPECT_NE(err(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8).find("overlaps"),
            std::string::npos);
  EXPECT_NE(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8).find("gap"),
            std::string::npos);
  EXPECT_NE(err(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 8).find("cover 4 of the 8"),
            std::string::npos);
  EXPECT_NE(err(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", 4).find("non-negative"),
            std::string::npos);
  EXPECT_NE(err(R"({"a":{"dtype":"F32","shape":[1]}})", 4).find("data_offsets"), std::string::npos);
  EXPECT_NE(err(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}})", 4)
                .find("too large"),
            std::string::npos);
  EXPECT_NE(err(R"({"__metadata__":{"k":1}})", 0).find("not a string"), std::string::npos);
  EXPECT_NE(err(R"({"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})", 4).find("not valid JSON"),
            std::string::npos);
}

}  // namespace
}  // namespace optiq
