// The Fashion-MNIST classifier whose features FD-FMNIST is measured in (model/fmnist_classifier.h): shapes,
// preprocessing, the file round trip, refusing other files, and that training on real images learns.
#include <gtest/gtest.h>
#include <torch/optim/adam.h>
#include <zlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "model/eval/fmnist_classifier.h"
#include "tests/test_util.h"
#include "common/error.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::temp_path;

const std::string kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// The first `n` bytes after `skip` of a gzip file.
std::vector<uint8_t> read_gz_prefix(const std::string& path, size_t skip, size_t n) {
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr) << path;
  std::vector<uint8_t> out(skip + n);
  const int got = gzread(f, out.data(), static_cast<unsigned>(out.size()));
  gzclose(f);
  EXPECT_EQ(got, static_cast<int>(out.size())) << path;
  return std::vector<uint8_t>(out.begin() + static_cast<long>(skip), out.end());
}

TEST(FmnistClassifier, ShapesAndFeatures) {
  at::manual_seed(0);
  FmnistClassifier model;
  model->eval();
  const at::Tensor x = at::rand({5, 1, 32, 32}) * 2 - 1;
  const at::Tensor logits = model->forward(x);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{5, 10}));
  const at::Tensor f = model->features(x);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{5, FmnistClassifierImpl::kFeatureDim}));
  EXPECT_EQ(f.size(1), 256);
  EXPECT_GE(f.min().item<float>(), 0.0f) << "features are taken after the ReLU";
  EXPECT_TRUE(at::allclose(model->classify(f), logits)) << "eval mode: no dropout";
}

TEST(FmnistClassifier, InputIsPaddedLikeTheTrainingData) {
  // 28x28 gray as RGB in [0, 1] -> 1x32x32 in [-1, 1] with a 2-pixel border of -1.
  const at::Tensor gray = at::rand({2, 1, 28, 28});
  const at::Tensor x = fmnist_classifier_input(gray.expand({2, 3, 28, 28}));
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{2, 1, 32, 32}));
  EXPECT_TRUE(at::equal(x.narrow(2, 2, 28).narrow(3, 2, 28), gray * 2 - 1));
  EXPECT_EQ(x.narrow(2, 0, 2).max().item<float>(), -1.0f);
  EXPECT_EQ(x.narrow(3, 30, 2).max().item<float>(), -1.0f);
  // 32x32 as is; a colour image becomes its luminance.
  const at::Tensor rgb = at::rand({1, 3, 32, 32});
  const at::Tensor lum = (0.299 * rgb[0][0] + 0.587 * rgb[0][1] + 0.114 * rgb[0][2]) * 2 - 1;
  EXPECT_TRUE(at::allclose(fmnist_classifier_input(rgb)[0][0], lum));
  EXPECT_THROW(fmnist_classifier_input(at::rand({1, 3, 64, 64})), Error);
}

TEST(FmnistClassifier, SaveLoadRoundTripGivesIdenticalLogits) {
  at::manual_seed(1);
  FmnistClassifier model;
  // Batch statistics that are not the defaults, so that the buffers are checked too.
  model->train();
  model->forward(at::randn({16, 1, 32, 32}));
  model->eval();
  const std::string path = temp_path("classifier.safetensors");
  save_fmnist_classifier(path, model, {{"test_accuracy", "0.5000"}});
  LoadedFmnistClassifier loaded = load_fmnist_classifier(path);
  const at::Tensor x = at::rand({4, 1, 32, 32}) * 2 - 1;
  EXPECT_TRUE(at::equal(loaded.model->forward(x), model->forward(x)));
  EXPECT_EQ(loaded.metadata.at(kFeatureNetworkKey), kFmnistClassifierKind);
  EXPECT_EQ(loaded.metadata.at("test_accuracy"), "0.5000");
  EXPECT_NE(loaded.metadata.at("class_names").find("\"Ankle boot\""), std::string::npos);
  EXPECT_FALSE(loaded.model->is_training());

  // As the feature extractor: images in [0, 1], 28x28 padded.
  FmnistFeatureExtractor extractor(loaded.model, path);
  const FeatureBatch b = extractor.extract(at::rand({3, 3, 28, 28}));
  EXPECT_EQ(b.features.sizes(), (std::vector<int64_t>{3, 256}));
  EXPECT_EQ(b.logits.sizes(), (std::vector<int64_t>{3, 10}));

  // float16 storage halves the file and loads back to float32.
  const std::string half = temp_path("classifier_f16.safetensors");
  save_fmnist_classifier(half, model, {}, at::kHalf);
  EXPECT_EQ(SafetensorsFile::open(half).entry("fc1.weight").dtype, "F16");
  EXPECT_LT(std::filesystem::file_size(half), std::filesystem::file_size(path) * 6 / 10);
  EXPECT_TRUE(at::allclose(load_fmnist_classifier(half).model->forward(x), model->forward(x), 1e-2, 1e-2));
}

TEST(FmnistClassifier, OtherFilesAreRefusedOnOneLine) {
  const std::string path = temp_path("not_a_classifier.safetensors");
  write_safetensors(path, {{"weight", at::zeros({2, 2})}}, {{"config", "{}"}});
  try {
    load_fmnist_classifier(path);
    FAIL() << "loaded a file that is not a classifier";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(path), std::string::npos) << what;
    EXPECT_NE(what.find("not a Fashion-MNIST classifier"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  // The right metadata but a missing tensor: named.
  write_safetensors(path, {{"conv1.weight", at::zeros({32, 1, 3, 3})}}, {{kFeatureNetworkKey, kFmnistClassifierKind}});
  try {
    load_fmnist_classifier(path);
    FAIL() << "loaded an incomplete classifier";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_fmnist_classifier(temp_path("missing.safetensors")), Error);
}

TEST(FmnistClassifier, AFewStepsOnRealImagesLowerTheLoss) {
  if (!std::filesystem::exists(kFashionMnistDir + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << kFashionMnistDir << " is missing (dataset-fashion-mnist)";
  const int64_t n = 256;
  const std::vector<uint8_t> pixels = read_gz_prefix(kFashionMnistDir + "/train-images-idx3-ubyte.gz", 16, n * 784);
  std::vector<uint8_t> labels = read_gz_prefix(kFashionMnistDir + "/train-labels-idx1-ubyte.gz", 8, n);
  ASSERT_EQ(pixels.size(), static_cast<size_t>(n * 784));
  const at::Tensor images =
      at::from_blob(const_cast<uint8_t*>(pixels.data()), {n, 1, 28, 28}, at::kByte).to(at::kFloat).div(255);
  const at::Tensor x = fmnist_classifier_input(images);
  const at::Tensor y = at::from_blob(labels.data(), {n}, at::kByte).to(at::kLong);

  at::manual_seed(2);
  FmnistClassifier model;
  model->train();
  torch::optim::Adam optimizer(model->parameters(), torch::optim::AdamOptions(2e-3));
  auto loss_of = [&] {
    at::NoGradGuard no_grad;
    model->eval();
    const double loss = at::nll_loss(at::log_softmax(model->forward(x), 1), y).item<double>();
    model->train();
    return loss;
  };
  const double before = loss_of();
  for (int step = 0; step < 8; ++step)
    for (int64_t b = 0; b < n; b += 64) {
      optimizer.zero_grad();
      at::nll_loss(at::log_softmax(model->forward(x.narrow(0, b, 64)), 1), y.narrow(0, b, 64)).backward();
      optimizer.step();
    }
  const double after = loss_of();
  EXPECT_LT(after, 0.7 * before) << "before " << before << ", after " << after;
}

}  // namespace
}  // namespace lit
