// `lit fid` as a user runs it: statistics files compared without any network, results printed with their
// convention and written as JSON, and one-line errors with a non-zero exit code.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tests/weights/torch_file_builder.h"
#include "weights/image_io.h"
#include "weights/npy.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

namespace fs = std::filesystem;
using test::fixture;
using test::run_command;
using test::temp_path;

const std::string kLit = std::string("env -u LIT_INCEPTION ") + LIT_CLI_PATH;

bool one_line(const std::string& s) {
  return !s.empty() && s.find('\n') == s.size() - 1;
}

// The number printed after "<label> (...): ".
double printed_value(const std::string& output, const std::string& label) {
  const size_t at = output.find(label + " (");
  if (at == std::string::npos) return NAN;
  const size_t colon = output.find("): ", at);
  return std::stod(output.substr(colon + 3));
}

// An Inception weights file in pytorch-fid's layout with every tensor zero (a torch.save zip): the network
// then maps every image to zero features and zero logits, which makes every metric a known answer.
const std::string& zero_inception_file() {
  static const std::string path = [] {
    std::ifstream in(fixture("inception/README.json"));
    const auto json = nlohmann::ordered_json::parse(in);
    test::PickleBytes p;
    p.proto(2).global("collections", "OrderedDict").op(')').op('R').mark();
    std::vector<std::pair<std::string, std::string>> storages;
    for (const auto& [name, shape_json] : json["state_dict_names_and_shapes"].items()) {
      const auto shape = shape_json.get<std::vector<int>>();
      if (shape.empty()) continue;  // num_batches_tracked
      std::vector<int> strides(shape.size(), 1);
      for (size_t i = shape.size() - 1; i > 0; --i) strides[i - 1] = strides[i] * shape[i];
      const int numel = strides[0] * shape[0];
      const std::string key = std::to_string(storages.size());
      p.str(name).tensor(key, numel, 0, shape, strides);
      storages.emplace_back(key, std::string(static_cast<size_t>(numel) * 4, '\0'));
    }
    p.op('u').stop();
    const std::string file = std::string(LIT_TEST_TMPDIR) + "/zero_inception.pth";
    test::write_torch_zip(file, "archive", p.s, storages);
    return file;
  }();
  return path;
}

std::string image_folder(const std::string& name, int n) {
  const std::string dir = temp_path(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  at::manual_seed(n);
  for (int i = 0; i < n; ++i)
    write_image(dir + "/" + std::to_string(100 + i) + ".png", at::randint(0, 256, {8, 12, 3}, at::kByte));
  return dir;
}

TEST(CliFid, ComparesStatisticsFilesWithoutANetwork) {
  const double fd = SafetensorsFile::open(fixture("fid/frechet.safetensors")).tensor("fd").item<double>();
  const std::string json = temp_path("result.json");
  const auto r = run_command(kLit + " fid " + fixture("fid/stats_a.npz") + " " + fixture("fid/stats_b_compressed.npz") +
                             " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("FID (statistics files of 64-d features, not Inception pool3; float64 stats): "),
            std::string::npos)
      << r.output;
  EXPECT_NEAR(printed_value(r.output, "FID"), fd, 1e-5 * fd) << r.output;
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  EXPECT_NEAR(j["fid"]["value"].get<double>(), fd, 1e-6 * fd);
  EXPECT_EQ(j["reference"]["kind"], "statistics (.npz mu, sigma)");
  std::remove(json.c_str());
}

TEST(CliFid, OneInputStatisticsAreSaved) {
  const std::string out = temp_path("stats.npz");
  const auto r = run_command(kLit + " fid " + fixture("fid/stats_a.npz") + " --save-stats " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mu (64), sigma (64x64), float64"), std::string::npos) << r.output;
  const auto arrays = read_npz(out);
  ASSERT_EQ(arrays.size(), 2u);
  EXPECT_EQ(arrays[0].first, "mu");
  EXPECT_EQ(arrays[1].second.scalar_type(), at::kDouble);
  std::remove(out.c_str());
}

TEST(CliFid, ImagesThroughInceptionWithEveryMetric) {
  // Every image costs a full 299x299 Inception pass, and every FID two 2048x2048 eigen-decompositions: few of each.
  const std::string ref = image_folder("ref", 4), samples = image_folder("samples", 10);
  const std::string stats = temp_path("ref_stats.npz");
  auto r = run_command(kLit + " fid --inception " + zero_inception_file() + " " + ref + " --save-stats " + stats +
                       " --batch-size 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("mu (2048), sigma (2048x2048), float64, from 4 images"), std::string::npos) << r.output;
  // Zero weights: zero features and logits, so FID 0, IS 1, precision and recall 1; and a warning that so
  // few samples are far fewer than 2048 dimensions. The saved statistics stand in for the reference folder.
  r = run_command(kLit + " fid --inception " + zero_inception_file() + " " + stats + " " + samples +
                  " --metrics fid,is");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("FID (pytorch-fid convention: pool3 2048-d, bilinear 299 resize, float64 stats): "),
            std::string::npos)
      << r.output;
  EXPECT_NEAR(printed_value(r.output, "FID"), 0.0, 1e-9) << r.output;
  EXPECT_NEAR(printed_value(r.output, "Inception Score"), 1.0, 1e-9) << r.output;
  EXPECT_NE(r.output.find("warning:"), std::string::npos) << r.output;
  r = run_command(kLit + " fid --inception " + zero_inception_file() + " " + ref + " " + samples + " --metrics pr");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(printed_value(r.output, "Precision"), 1.0, 1e-9) << r.output;
  EXPECT_NEAR(printed_value(r.output, "Recall"), 1.0, 1e-9) << r.output;
  // pr needs features of both sides: a statistics file has none (refused before any work).
  r = run_command(kLit + " fid --inception " + zero_inception_file() + " " + stats + " " + samples + " --metrics pr");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  std::remove(stats.c_str());
}

TEST(CliFid, UnreadableImageIsNamedOnOneLine) {
  const std::string dir = image_folder("broken", 3);
  { std::ofstream(dir + "/000_broken.png") << "garbage"; }
  const auto r = run_command(kLit + " fid --inception " + zero_inception_file() + " " + dir);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("000_broken.png"), std::string::npos) << r.output;
}

TEST(CliFid, MismatchedDimensionsAreOneLine) {
  const std::string small = temp_path("stats32.npz");
  write_npz(small, {{"mu", at::zeros({32}, at::kDouble)}, {"sigma", at::eye(32, at::kDouble)}});
  const auto r = run_command(kLit + " fid " + fixture("fid/stats_a.npz") + " " + small);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("stats32.npz"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("stats_a.npz"), std::string::npos) << r.output;
  std::remove(small.c_str());
}

TEST(CliFid, EmptyFolderAndMissingWeightsAreOneLine) {
  const std::string empty = temp_path("empty");
  fs::remove_all(empty);
  fs::create_directories(empty);
  auto r = run_command(kLit + " fid --inception " + zero_inception_file() + " " + empty);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("no images"), std::string::npos) << r.output;

  r = run_command(kLit + " fid " + image_folder("no_weights", 2));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("LIT_INCEPTION"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("github.com/mseitzer/pytorch-fid/releases"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lit
