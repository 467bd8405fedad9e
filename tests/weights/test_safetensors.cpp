#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <fstream>

#include "common/error.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::error_of;
using test::fixture;
using test::temp_path;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A safetensors file built by hand from a header and raw data.
std::string make_file(const std::string& header, const std::string& data) {
  std::string len(8, '\0');
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((uint64_t(header.size()) >> (8 * i)) & 0xff);
  return len + header + data;
}

TEST(Safetensors, ReadsFixtureTensorsWithShapesAndDtypes) {
  const auto file = SafetensorsFile::open(fixture("dit/dit_tiny_io.safetensors"));
  for (const char* name : {"x", "t", "y", "out", "cfg_x", "cfg_out", "t_freq", "pos_embed"})
    EXPECT_TRUE(file.contains(name)) << name;
  const at::Tensor x = file.tensor("x");
  EXPECT_EQ(x.dim(), 4);
  EXPECT_EQ(x.size(1), 4);  // latent channels of the tiny DiT
  EXPECT_EQ(x.size(2), 8);
  EXPECT_EQ(file.tensor("out").size(1), 8);  // learned sigma: 2C output channels
  EXPECT_EQ(file.tensor("t_freq").size(-1), 256);
  EXPECT_EQ(file.tensor("y").scalar_type(), at::kLong);
}

TEST(Safetensors, HalfPrecisionFileHoldsTheWholeStateDict) {
  const auto file = SafetensorsFile::open(fixture("dit/dit_tiny_fp16.safetensors"));
  ASSERT_TRUE(file.contains("x_embedder.proj.weight"));
  const at::Tensor w = file.tensor("x_embedder.proj.weight");
  EXPECT_EQ(w.scalar_type(), at::kHalf);
  EXPECT_EQ(w.sizes(), (std::vector<int64_t>{64, 4, 2, 2}));
  EXPECT_TRUE(at::isfinite(w.to(at::kFloat)).all().item<bool>());
  EXPECT_GT(w.to(at::kFloat).abs().sum().item<float>(), 0.0f);
}

TEST(Safetensors, RoundTripKeepsValuesOrderAndMetadata) {
  const std::string path = temp_path("rt.safetensors");
  const at::Tensor a = at::randn({3, 5});
  const at::Tensor b = at::arange(7, at::kLong);
  const at::Tensor c = at::randn({2, 2, 3}).to(at::kBFloat16);
  const at::Tensor d = at::randn({4, 6}).t();  // non-contiguous input
  write_safetensors(path, {{"zeta", a}, {"alpha", b}, {"mid", c}, {"strided", d}}, {{"config", "{\"k\":1}"}});
  const auto file = SafetensorsFile::open(path);
  ASSERT_EQ(file.entries().size(), 4u);
  EXPECT_EQ(file.entries()[0].name, "zeta");  // file order is write order
  EXPECT_TRUE(at::equal(file.tensor("zeta"), a));
  EXPECT_TRUE(at::equal(file.tensor("alpha"), b));
  EXPECT_TRUE(at::equal(file.tensor("mid"), c));
  EXPECT_TRUE(at::equal(file.tensor("strided"), d));
  EXPECT_EQ(file.metadata().at("config"), "{\"k\":1}");
  EXPECT_EQ(file.entry("mid").dtype, "BF16");
}

TEST(Safetensors, TensorsAreCopyOnWriteViews) {
  const std::string path = temp_path("cow.safetensors");
  write_safetensors(path, {{"w", at::ones({16})}});
  const std::string before = read_bytes(path);
  {
    const auto file = SafetensorsFile::open(path);
    at::Tensor w = file.tensor("w");
    w.mul_(3);  // must not write through to the file
    EXPECT_EQ(w[0].item<float>(), 3.0f);
  }
  EXPECT_EQ(read_bytes(path), before);
}

TEST(Safetensors, MissingFileNamesThePath) {
  try {
    SafetensorsFile::open("/nonexistent/model.safetensors");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model.safetensors"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("No such file"), std::string::npos);
  }
}

TEST(Safetensors, RejectsCorruptHeaders) {
  const std::string path = temp_path("bad.safetensors");
  const std::string data(16, '\0');
  struct Case {
    std::string bytes;
    std::string expect;
  };
  const std::vector<Case> cases = {
      {"abc", "shorter than"},
      {std::string("\xff\xff\xff\xff\x00\x00\x00\x00", 8) + "{}", "header length"},
      {make_file("{not json", data), "invalid JSON"},
      {make_file("[1,2]", data), "not a JSON object"},
      {make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}})", data), "out of range"},
      {make_file(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}})", data), "out of range"},
      {make_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data), "does not match"},
      {make_file(R"({"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data), "negative"},
      {make_file(R"({"w":{"dtype":"Q4","shape":[4],"data_offsets":[0,16]}})", data), "unsupported dtype"},
      {make_file(R"({"w":{"dtype":"F32","shape":[4]}})", data), "data_offsets"},
      {make_file(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}})", data),
       "overflows"},
      {make_file(
           R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
           data),
       "overlap"},
  };
  for (const auto& c : cases) {
    write_bytes(path, c.bytes);
    try {
      SafetensorsFile::open(path);
      ADD_FAILURE() << "accepted: " << c.expect;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

TEST(Safetensors, UnknownTensorNameIsAnError) {
  const auto file = SafetensorsFile::open(fixture("dit/dit_tiny_io.safetensors"));
  EXPECT_THROW(file.tensor("nope"), Error);
}

TEST(Safetensors, FailedWriteLeavesNoFileBehind) {
  const std::string path = "/nonexistent-dir/out.safetensors";
  EXPECT_THROW(write_safetensors(path, {{"w", at::ones({2})}}), Error);
  std::ifstream in(path);
  EXPECT_FALSE(in.good());
}

TEST(Safetensors, FullDiskIsReportedAndNothingIsLeft) {
  // A file size limit fails write(2) with EFBIG as a full disk fails it with ENOSPC; the limit is set in a
  // child process so it stays there. (A symlink to /dev/full at the temporary name no longer works: the writer
  // never opens a name that exists.)
  const std::string path = temp_path("full.safetensors");
  std::remove(path.c_str());
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit{4096, 4096};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    const std::string message = error_of([&] { write_safetensors(path, {{"w", at::ones({1 << 16})}}); });
    _exit(message.find("File too large") != std::string::npos ? 0 : 2);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  std::ifstream in(path);
  EXPECT_FALSE(in.good());
}

TEST(Safetensors, SniffsTheFormat) {
  EXPECT_TRUE(looks_like_safetensors(fixture("dit/dit_tiny_fp16.safetensors")));
  EXPECT_FALSE(looks_like_safetensors(fixture("dit/dit_tiny.pt")));
  EXPECT_FALSE(looks_like_safetensors(fixture("dit/config.json")));
}

}  // namespace
}  // namespace lit
