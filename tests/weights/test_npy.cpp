// .npy / .npz: the FID statistics files of the fixtures (np.savez, np.savez_compressed, the ADM reference batch
// layout), checked against the feature sets they were computed from; round trips; refusals.
#include <gtest/gtest.h>

#include <fstream>

#include "tests/test_util.h"
#include "common/error.h"
#include "weights/npy.h"
#include "weights/safetensors.h"
#include "weights/zip_archive.h"

namespace lit {
namespace {

using test::fixture;
using test::temp_path;

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::map<std::string, at::Tensor> as_map(const std::vector<std::pair<std::string, at::Tensor>>& arrays) {
  return {arrays.begin(), arrays.end()};
}

// The statistics pytorch-fid computes: the mean, and np.cov(rowvar=False) (unbiased), in float64.
void expect_stats_of(const std::map<std::string, at::Tensor>& stats, const at::Tensor& feats) {
  const at::Tensor mu = feats.mean(0);
  const at::Tensor centered = feats - mu;
  const at::Tensor sigma = centered.t().mm(centered) / (feats.size(0) - 1);
  ASSERT_EQ(stats.at("mu").scalar_type(), at::kDouble);
  ASSERT_EQ(stats.at("sigma").scalar_type(), at::kDouble);
  EXPECT_EQ(stats.at("mu").sizes(), mu.sizes());
  EXPECT_EQ(stats.at("sigma").sizes(), sigma.sizes());
  // Same formula, different summation order than NumPy's: equal to float64 rounding.
  EXPECT_LT(test::rel_error(stats.at("mu"), mu), 1e-13);
  EXPECT_LT(test::rel_error(stats.at("sigma"), sigma), 1e-13);
}

TEST(Npz, StoredStatisticsAreTheMeanAndCovarianceOfTheirFeatures) {
  const auto stats = as_map(read_npz(fixture("fid/stats_a.npz")));
  EXPECT_EQ(stats.size(), 2u);
  const SafetensorsFile feats = SafetensorsFile::open(fixture("fid/frechet.safetensors"));
  expect_stats_of(stats, feats.tensor("feats_a"));
}

TEST(Npz, CompressedStatisticsToo) {
  const auto stats = as_map(read_npz(fixture("fid/stats_b_compressed.npz")));
  const SafetensorsFile feats = SafetensorsFile::open(fixture("fid/frechet.safetensors"));
  expect_stats_of(stats, feats.tensor("feats_b"));
}

TEST(Npz, AdmReferenceBatchLayout) {
  const auto arrays = read_npz(fixture("fid/ref_batch_adm_style.npz"));
  ASSERT_EQ(arrays.size(), 3u);
  EXPECT_EQ(arrays[0].first, "arr_0");  // archive order
  const at::Tensor images = arrays[0].second;
  EXPECT_EQ(images.scalar_type(), at::kByte);
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{8, 32, 32, 3}));  // NHWC
  EXPECT_GT(images.to(at::kInt).max().item<int>(), 0);
  const auto stats = as_map(arrays);
  EXPECT_EQ(stats.at("mu").sizes(), (std::vector<int64_t>{64}));
  EXPECT_EQ(stats.at("sigma").sizes(), (std::vector<int64_t>{64, 64}));
}

TEST(Npy, HeaderIsByteForByteNumPys) {
  // The fixtures were written by NumPy: our header for the same array must be identical.
  const ZipReader zip(fixture("fid/stats_a.npz"));
  const std::string mu = zip.read(*zip.find("mu.npy"), 1 << 20);
  const std::string sigma = zip.read(*zip.find("sigma.npy"), 1 << 20);
  EXPECT_EQ(npy_header(at::kDouble, {64}), mu.substr(0, 128));
  EXPECT_EQ(npy_header(at::kDouble, {64, 64}), sigma.substr(0, 128));
  const ZipReader adm(fixture("fid/ref_batch_adm_style.npz"));
  const std::string arr = adm.read(*adm.find("arr_0.npy"), 1 << 20);
  EXPECT_EQ(npy_header(at::kByte, {8, 32, 32, 3}), arr.substr(0, 128));
}

TEST(Npy, RoundTripEveryDtypeAndShape) {
  const std::string path = temp_path("a.npy");
  const std::vector<at::Tensor> arrays = {
      at::randn({3, 4}, at::kDouble),
      at::randn({5}),
      at::randn({2, 3}).to(at::kHalf),
      at::randint(0, 255, {2, 2, 3}, at::kByte),
      at::randint(-100, 100, {7}, at::kChar),
      at::randint(-1000, 1000, {7}, at::kShort),
      at::randint(-100000, 100000, {4, 1}, at::kInt),
      at::randint(-100000, 100000, {4}, at::kLong),
      at::rand({6}) > 0.5,
      at::scalar_tensor(3.25, at::kDouble),  // 0-d
      at::empty({0, 5}),                     // empty
      at::randn({4, 6}).t(),                 // non-contiguous input
  };
  for (const auto& a : arrays) {
    write_npy(path, a);
    const std::string bytes = read_bytes(path);
    EXPECT_EQ(bytes.size() - static_cast<size_t>(a.numel() * a.element_size()),
              npy_header(a.scalar_type(), a.sizes().vec()).size());
    EXPECT_EQ(npy_header(a.scalar_type(), a.sizes().vec()).size() % 64, 0u);
    const at::Tensor back = read_npy(path);
    EXPECT_EQ(back.scalar_type(), a.scalar_type());
    EXPECT_EQ(back.sizes(), a.sizes());
    EXPECT_TRUE(at::equal(back, a)) << a;
  }
}

TEST(Npz, RoundTripStoredAndCompressed) {
  const std::vector<std::pair<std::string, at::Tensor>> arrays = {
      {"mu", at::randn({64}, at::kDouble)},
      {"sigma", at::randn({64, 64}, at::kDouble)},
      {"arr_0", at::randint(0, 255, {4, 8, 8, 3}, at::kByte)},
      {"empty", at::empty({0})},
  };
  for (bool compressed : {false, true}) {
    const std::string path = temp_path(compressed ? "c.npz" : "s.npz");
    write_npz(path, arrays, compressed);
    const auto back = read_npz(path);
    ASSERT_EQ(back.size(), arrays.size());
    for (size_t i = 0; i < arrays.size(); ++i) {
      EXPECT_EQ(back[i].first, arrays[i].first);
      EXPECT_TRUE(at::equal(back[i].second, arrays[i].second)) << arrays[i].first;
    }
  }
  // Zeros compress well: the compressed archive is the smaller one.
  const std::vector<std::pair<std::string, at::Tensor>> zeros = {{"z", at::zeros({4096}, at::kDouble)}};
  write_npz(temp_path("zs.npz"), zeros, false);
  write_npz(temp_path("zc.npz"), zeros, true);
  EXPECT_LT(read_bytes(temp_path("zc.npz")).size() * 10, read_bytes(temp_path("zs.npz")).size());
  // An archive without arrays is valid too.
  write_npz(temp_path("none.npz"), {}, false);
  EXPECT_TRUE(read_npz(temp_path("none.npz")).empty());
}

TEST(Npy, RefusesWhatItCannotRead) {
  const std::string path = temp_path("bad.npy");
  auto with_dict = [](const std::string& dict, const std::string& data) {
    std::string header = dict;
    header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
    header += '\n';
    std::string out("\x93NUMPY\x01\x00", 8);
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
    return out + header + data;
  };
  struct Case {
    std::string bytes, expect;
  };
  const std::vector<Case> cases = {
      {with_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", std::string(8, '\0')), "Fortran"},
      {with_dict("{'descr': '>f8', 'fortran_order': False, 'shape': (1,), }", std::string(8, '\0')), "big-endian"},
      {with_dict("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", std::string(8, '\0')),
       "unsupported dtype"},
      {with_dict("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", std::string(4, '\0')),
       "structured"},
      {with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", std::string(8, '\0')),
       "holds 8 data bytes, its header (shape and dtype) says 12"},
      {with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), ", ""), "truncated .npy header"},
      {with_dict("{'descr': '<f4', 'shape': (1,), }", std::string(4, '\0')), "lacks"},
      {with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", ""), "overflows"},
      {"not numpy at all", "no \\x93NUMPY magic"},
      {std::string("\x93NUMPY\x01\x00\xff\xff", 10), "truncated .npy header"},
      {"", "truncated .npy header"},
  };
  for (const auto& c : cases) {
    write_bytes(path, c.bytes);
    try {
      read_npy(path);
      ADD_FAILURE() << "accepted: " << c.expect;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(npy_descr(at::kBFloat16), Error);
}

TEST(Npz, TruncatedAndForeignArchivesAreErrors) {
  const std::string bytes = read_bytes(fixture("fid/stats_b_compressed.npz"));
  const std::string path = temp_path("cut.npz");
  for (size_t i = 0; i < 60; ++i) {
    write_bytes(path, bytes.substr(0, bytes.size() * i / 60));
    EXPECT_THROW(read_npz(path), Error) << i;
  }
  // Corrupt deflate data: libzip's CRC (or inflate) check must catch it.
  std::string corrupt = bytes;
  for (size_t i = 200; i < 400; ++i) corrupt[i] = static_cast<char>(corrupt[i] ^ 0x5a);
  write_bytes(path, corrupt);
  EXPECT_THROW(read_npz(path), Error);
  EXPECT_THROW(read_npz(fixture("dit/config.json")), Error);
}

TEST(Npz, FailedWriteLeavesNothing) {
  EXPECT_THROW(write_npz("/nonexistent-dir/x.npz", {{"a", at::ones({2})}}), Error);
  EXPECT_THROW(write_npy("/nonexistent-dir/x.npy", at::ones({2})), Error);
  EXPECT_THROW(write_npz(temp_path("bf16.npz"), {{"a", at::ones({2}, at::kBFloat16)}}), Error);
  EXPECT_FALSE(std::ifstream(temp_path("bf16.npz")).good());
}

}  // namespace
}  // namespace lit
