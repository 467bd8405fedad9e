// Inputs of `lit fid`: image folders, .npz image batches and statistics, through a tiny feature network (the
// pipeline does not depend on which network it runs; Inception itself is tested in test_inception.cpp).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/eval/fid_inputs.h"
#include "tests/test_util.h"
#include "common/error.h"
#include "weights/image_io.h"
#include "weights/npy.h"

namespace lit {
namespace {

namespace fs = std::filesystem;
using test::temp_path;

// Resize to 16x16 (bilinear, as Inception's preprocessing), a fixed random 3x3 conv, ReLU, 4x4 average pool:
// 8 x 4 x 4 = 128 features, and 5 logits from a fixed linear layer.
class TinyFeatures : public FeatureExtractor {
 public:
  TinyFeatures() {
    at::manual_seed(7);
    conv_ = at::randn({8, 3, 3, 3});
    fc_ = at::randn({5, 128});
  }
  std::string name() const override { return "tiny test network"; }
  std::string convention() const override { return "test convention"; }
  int64_t feature_dim() const override { return 128; }
  bool has_logits() const override { return true; }
  FeatureBatch extract(const at::Tensor& images) override {
    ++calls;
    at::Tensor x = at::upsample_bilinear2d(images, at::IntArrayRef({16, 16}), false);
    x = at::avg_pool2d(at::relu(at::conv2d(2 * x - 1, conv_, {}, 1, 1)), {4, 4});
    FeatureBatch b;
    b.features = x.flatten(1);
    b.logits = at::matmul(b.features, fc_.t());
    return b;
  }
  int calls = 0;

 private:
  at::Tensor conv_, fc_;
};

// A fresh folder under the test scratch area.
std::string fresh_folder(const std::string& name) {
  const std::string dir = temp_path(name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// n random images of size h x w, written as PNGs under dir (half in a sub-folder); returns them (N, H, W, 3)
// in the sorted-path order the folder reader uses.
at::Tensor write_images(const std::string& dir, int64_t n, int64_t h, int64_t w, int64_t first = 0) {
  at::manual_seed(static_cast<uint64_t>(11 + first));
  const at::Tensor pixels = at::randint(0, 256, {n, h, w, 3}, at::kByte);
  fs::create_directories(dir + "/b_sub");
  for (int64_t i = 0; i < n; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "%s/img_%03lld.png", i % 2 ? "b_sub" : "a", static_cast<long long>(first + i));
    fs::create_directories(dir + "/a");
    write_image(dir + "/" + name, pixels[i].contiguous());
  }
  // Sorted order: every a/ image, then every b_sub/ image.
  std::vector<at::Tensor> ordered;
  for (int64_t i = 0; i < n; i += 2) ordered.push_back(pixels[i]);
  for (int64_t i = 1; i < n; i += 2) ordered.push_back(pixels[i]);
  return at::stack(ordered);
}

TEST(FidInputs, FolderTwiceAndFolderVsNpzGiveIdenticalStatistics) {
  const std::string dir = fresh_folder("images");
  const at::Tensor pixels = write_images(dir, 10, 20, 24);
  const std::string npz = temp_path("batch.npz");
  write_npz(npz, {{"arr_0", pixels}});

  TinyFeatures net;
  FeatureRunOptions opt;
  opt.batch_size = 4;
  std::vector<std::pair<int64_t, int64_t>> progress;
  opt.progress = [&](int64_t done, int64_t total) { progress.emplace_back(done, total); };

  const FidInput folder = open_fid_input(dir);
  EXPECT_EQ(folder.kind, FidInputKind::ImageFolder);
  ASSERT_EQ(folder.num_images(), 10);
  const FeatureBatch f1 = extract_features(folder, net, opt);
  const FeatureBatch f2 = extract_features(open_fid_input(dir), net, opt);
  const FidInput batch = open_fid_input(npz);
  EXPECT_EQ(batch.kind, FidInputKind::ImageBatch);
  EXPECT_FALSE(batch.stats.has_value());
  const FeatureBatch f3 = extract_features(batch, net, opt);

  EXPECT_EQ(f1.features.sizes(), (std::vector<int64_t>{10, 128}));
  EXPECT_TRUE(at::equal(f1.features, f2.features));
  EXPECT_TRUE(at::equal(f1.features, f3.features));
  EXPECT_TRUE(at::equal(f1.logits, f3.logits));
  const FeatureStatistics s1 = compute_statistics(f1.features), s3 = compute_statistics(f3.features);
  EXPECT_TRUE(at::equal(s1.mu, s3.mu));
  EXPECT_TRUE(at::equal(s1.sigma, s3.sigma));
  EXPECT_EQ(progress.back(), (std::pair<int64_t, int64_t>{10, 10}));
  EXPECT_EQ(progress.size(), 12u);  // the start and three batches, for each of the three runs

  // Features are those of the images alone, as ToTensor makes them: x / 255, CHW.
  const at::Tensor first = image_to_unit_rgb(pixels[0]).unsqueeze(0);
  EXPECT_TRUE(at::allclose(net.extract(first).features[0], f1.features[0]));
  std::remove(npz.c_str());
}

TEST(FidInputs, MixedSizesAreBatchedBySize) {
  const std::string dir = fresh_folder("mixed");
  write_images(dir, 3, 20, 20, 0);
  write_images(dir, 3, 32, 16, 3);
  TinyFeatures net;
  FeatureRunOptions opt;
  opt.batch_size = 6;
  const FidInput in = open_fid_input(dir);
  ASSERT_EQ(in.num_images(), 6);
  const FeatureBatch f = extract_features(in, net, opt);
  ASSERT_EQ(f.features.size(0), 6);
  for (int64_t i = 0; i < 6; ++i) {
    const at::Tensor one = image_to_unit_rgb(read_image(in.files[static_cast<size_t>(i)])).unsqueeze(0);
    EXPECT_TRUE(at::allclose(net.extract(one).features[0], f.features[i], 1e-6, 1e-6))
        << in.files[static_cast<size_t>(i)];
  }
}

TEST(FidInputs, GrayAndAlphaBecomeRgb) {
  const at::Tensor gray = at::full({2, 2, 1}, 51, at::kByte);
  const at::Tensor rgb = image_to_unit_rgb(gray);
  EXPECT_EQ(rgb.sizes(), (std::vector<int64_t>{3, 2, 2}));
  EXPECT_FLOAT_EQ(rgb[2][1][1].item<float>(), 0.2f);
  EXPECT_EQ(image_to_unit_rgb(at::zeros({2, 2, 4}, at::kByte)).size(0), 3);
}

TEST(FidInputs, UnreadableImageIsNamed) {
  const std::string dir = fresh_folder("broken");
  write_images(dir, 2, 8, 8);
  { std::ofstream(dir + "/a/zz_broken.png") << "not a png at all"; }
  TinyFeatures net;
  try {
    extract_features(open_fid_input(dir), net);
    FAIL() << "expected lit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("zz_broken.png"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
}

TEST(FidInputs, EmptyFolderAndForeignFilesAreRefused) {
  const std::string dir = fresh_folder("empty");
  { std::ofstream(dir + "/notes.txt") << "no images here"; }
  try {
    open_fid_input(dir);
    FAIL() << "expected lit::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no images"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
  }
  EXPECT_THROW(open_fid_input(temp_path("missing.npz")), Error);
  const std::string npz = temp_path("other.npz");
  write_npz(npz, {{"weights", at::zeros({3})}});
  EXPECT_THROW(open_fid_input(npz), Error);
  write_npz(npz, {{"arr_0", at::zeros({2, 4, 4, 3})}});  // float, not uint8
  EXPECT_THROW(open_fid_input(npz), Error);
  std::remove(npz.c_str());

  TinyFeatures net;
  FidInput stats;
  stats.kind = FidInputKind::Statistics;
  stats.path = "s.npz";
  EXPECT_THROW(extract_features(stats, net), Error);
}

}  // namespace
}  // namespace lit
