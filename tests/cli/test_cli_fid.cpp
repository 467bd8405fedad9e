// `lit fid` as a user runs it: statistics files compared without any network, results printed with their
// convention and written as JSON, and one-line errors with a non-zero exit code.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tests/weights/torch_file_builder.h"
#include "tools/train/fashion_mnist.h"
#include "weights/generation_params.h"
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

// ---------------------------------------------------------------------------------------------------------
// --feature-network: FD-FMNIST in the built-in Fashion-MNIST classifier's feature space
// ---------------------------------------------------------------------------------------------------------
const std::string kClassifier = std::string(LIT_FIXTURES_DIR) + "/../../model/builtin/fmnist-classifier.safetensors";
const std::string kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The first n t10k images as uint8 (n, 28, 28) and their labels.
struct RealImages {
  at::Tensor pixels, labels;
};
RealImages first_t10k(int64_t n) {
  const auto data = train::load_fashion_mnist(kFashionMnistDir, "t10k");
  std::vector<at::Tensor> xs;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < n; ++i) {
    const auto e = data->get(i, 0);  // (1, 32, 32) in [-1, 1], the 28x28 image in the middle
    xs.push_back(e.x[0].narrow(0, 2, 28).narrow(1, 2, 28));
    labels.push_back(e.label);
  }
  return {at::stack(xs).add(1).mul(127.5).round().to(at::kByte), at::tensor(labels, at::kLong)};
}

#define SKIP_WITHOUT_FMNIST()                                                                   \
  if (!fs::exists(kClassifier) || !fs::exists(kFashionMnistDir + "/t10k-images-idx3-ubyte.gz")) \
  GTEST_SKIP() << "needs " << kClassifier << " and " << kFashionMnistDir

TEST(CliFidFmnist, SameImagesByTwoRoutesAreAtZeroAndNoiseIsFar) {
  SKIP_WITHOUT_FMNIST();
  const RealImages real = first_t10k(400);
  // Route 1: an .npz of 28x28 one-channel images. Route 2: a folder of 32x32 RGB PNGs padded with black.
  const std::string npz = temp_path("real.npz");
  write_npz(npz, {{"arr_0", real.pixels.unsqueeze(3)}});
  const std::string dir = temp_path("real_png");
  fs::remove_all(dir);
  fs::create_directories(dir);
  const at::Tensor padded = at::constant_pad_nd(real.pixels, {2, 2, 2, 2}, 0).unsqueeze(3).expand({-1, -1, -1, 3});
  for (int64_t i = 0; i < padded.size(0); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "/%04d.png", static_cast<int>(i));
    write_image(dir + name, padded[i].contiguous());
  }
  const std::string json = temp_path("fd.json");
  auto r = run_command(kLit + " fid --feature-network " + kClassifier + " " + npz + " " + dir + " --json " + json);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("FID"), std::string::npos) << "never called FID: " << r.output;
  const double same = printed_value(r.output, "FD-FMNIST");
  EXPECT_NEAR(same, 0.0, 1e-3) << r.output;
  EXPECT_NEAR(printed_value(r.output, "Precision"), 1.0, 1e-9) << r.output;
  EXPECT_NEAR(printed_value(r.output, "Recall"), 1.0, 1e-9) << r.output;
  EXPECT_EQ(r.output.find("class accuracy"), std::string::npos) << "a folder without labels: " << r.output;
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  EXPECT_NEAR(j["fd_fmnist"]["value"].get<double>(), same, 1e-9);

  // A noised, shifted copy is far.
  at::manual_seed(3);
  const at::Tensor noised =
      (real.pixels.to(at::kFloat) + 60 * at::randn(real.pixels.sizes())).roll({3}, {2}).clamp(0, 255).to(at::kByte);
  const std::string far = temp_path("noised.npz");
  write_npz(far, {{"arr_0", noised.unsqueeze(3)}});
  r = run_command(kLit + " fid --feature-network " + kClassifier + " " + npz + " " + far);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(printed_value(r.output, "FD-FMNIST"), 1.0) << r.output;
  EXPECT_GT(printed_value(r.output, "FD-FMNIST"), 1000 * std::max(same, 1e-6)) << r.output;
  fs::remove_all(dir);
}

TEST(CliFidFmnist, LabelsOfAnNpzGiveTheClassAccuracy) {
  SKIP_WITHOUT_FMNIST();
  const RealImages real = first_t10k(300);
  const std::string ref = temp_path("ref.npz"), samples = temp_path("labelled.npz");
  write_npz(ref, {{"arr_0", real.pixels.unsqueeze(3)}});
  // RGB 28x28 with int32 labels (guided-diffusion's arr_1; int32 read as well as int64).
  write_npz(samples, {{"arr_0", real.pixels.unsqueeze(3).expand({-1, -1, -1, 3}).contiguous()},
                      {"arr_1", real.labels.to(at::kInt)}});
  auto r = run_command(kLit + " fid --feature-network " + kClassifier + " " + ref + " " + samples);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NEAR(printed_value(r.output, "FD-FMNIST"), 0.0, 1e-3) << r.output;
  EXPECT_GT(printed_value(r.output, "class accuracy"), 0.85) << r.output;
  EXPECT_NE(r.output.find("  9 Ankle boot"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  0 T-shirt/top"), std::string::npos) << r.output;

  // A folder written by `lit generate`: the labels are the "Class" field of each PNG's parameters.
  const std::string dir = temp_path("generated");
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (int64_t i = 0; i < 100; ++i) {
    GenerationParams p;
    p.prompt = "class " + std::to_string(real.labels[i].item<int64_t>());
    p.set("Steps", "1");
    p.set("Seed", std::to_string(i));
    p.set("Class", std::to_string(real.labels[i].item<int64_t>()));
    ImageWriteOptions options;
    options.text = {{kParametersKeyword, format_generation_params(p)}};
    char name[32];
    std::snprintf(name, sizeof name, "/%06d.png", static_cast<int>(i));
    write_image(dir + name, real.pixels[i].unsqueeze(2).expand({28, 28, 3}).contiguous(), options);
  }
  r = run_command(kLit + " fid --feature-network " + kClassifier + " " + ref + " " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(printed_value(r.output, "class accuracy"), 0.85) << r.output;
  EXPECT_NE(r.output.find("/100)"), std::string::npos) << r.output;
  fs::remove_all(dir);

  // Wrong labels: the accuracy says so.
  write_npz(samples, {{"arr_0", real.pixels.unsqueeze(3)}, {"arr_1", (real.labels + 1).remainder(10)}});
  r = run_command(kLit + " fid --feature-network " + kClassifier + " " + ref + " " + samples);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LT(printed_value(r.output, "class accuracy"), 0.2) << r.output;
}

TEST(CliFidFmnist, ErrorsAreOneLine) {
  SKIP_WITHOUT_FMNIST();
  const std::string npz = temp_path("few.npz");
  write_npz(npz, {{"arr_0", first_t10k(8).pixels.unsqueeze(3)}});
  // Not a classifier: named.
  const std::string other = temp_path("other.safetensors");
  write_safetensors(other, {{"w", at::zeros({2})}});
  auto r = run_command(kLit + " fid --feature-network " + other + " " + npz + " " + npz);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("other.safetensors"), std::string::npos) << r.output;
  // An unknown split, the Inception Score, labels outside 0..9, images of another size.
  r = run_command(kLit + " fid --feature-network " + kClassifier + " fashion-mnist:test " + npz);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("fashion-mnist:test"), std::string::npos) << r.output;
  r = run_command(kLit + " fid --feature-network " + kClassifier + " " + npz + " --metrics is");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  const std::string bad = temp_path("bad_labels.npz");
  write_npz(bad, {{"arr_0", first_t10k(8).pixels.unsqueeze(3)}, {"arr_1", at::full({8}, 12, at::kLong)}});
  r = run_command(kLit + " fid --feature-network " + kClassifier + " " + npz + " " + bad);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("bad_labels.npz"), std::string::npos) << r.output;
  r = run_command(kLit + " fid --feature-network " + kClassifier + " " + npz + " " + image_folder("sizes", 3));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(one_line(r.output)) << r.output;
  EXPECT_NE(r.output.find("28x28 or 32x32"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lit
