// Fashion-MNIST: the IDX reader, and a tiny LiT that overfits 256 images on the CPU.
#include <gtest/gtest.h>

#include <filesystem>
#include <numeric>

#include "model/backbone/class_labels.h"
#include "model/backbone/model_io.h"
#include "tests/train/train_test_util.h"
#include "tools/train/fashion_mnist.h"
#include "tools/train/train_checkpoint.h"
#include "tools/train/trainer.h"
#include "common/error.h"

namespace lit::test {
namespace {

bool have_fashion_mnist() {
  return std::filesystem::exists(train::default_fashion_mnist_dir() + "/train-images-idx3-ubyte.gz");
}

TEST(FashionMnist, ReadsPaddedImagesInMinusOneToOne) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto data = train::load_fashion_mnist(train::default_fashion_mnist_dir(), "t10k");
  EXPECT_EQ(data->size(), 10000);
  EXPECT_EQ(data->num_classes(), 10);
  const train::Example e = data->get(0, 0);
  EXPECT_EQ(e.x.sizes(), (std::vector<int64_t>{1, 32, 32}));
  EXPECT_EQ(e.label, 9);  // the first test image is an ankle boot
  EXPECT_EQ(e.x.min().item<float>(), -1.0f);
  EXPECT_GT(e.x.max().item<float>(), 0.5f);
  EXPECT_TRUE(at::equal(e.x.narrow(1, 0, 2), at::full({1, 2, 32}, -1.0f)));  // the padding
}

TEST(FashionMnist, MissingFilesNameThePath) {
  try {
    train::load_fashion_mnist("/nonexistent-fmnist");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-fmnist/train-images-idx3-ubyte.gz"), std::string::npos);
  }
}

TEST(FashionMnist, TinyLitOverfits256Images) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  ModelConfig c;
  c.input_size = 32;
  c.patch_size = 4;
  c.in_channels = 1;
  c.hidden_size = 64;
  c.depth = 2;
  c.num_heads = 2;
  c.num_classes = 10;
  c.attention = AttentionType::Linear;
  auto data = train::make_subset(train::load_fashion_mnist(train::default_fashion_mnist_dir(), "train"), 256);
  train::TrainOptions o;
  o.batch_size = 32;
  o.lr = 2e-3;
  o.max_steps = 150;
  o.seed = 1;
  train::Trainer trainer(fresh_model(c, 1), nullptr, data, o);
  std::vector<double> mse;
  trainer.run([&](const train::StepStats& s) { mse.push_back(s.mse); });
  ASSERT_EQ(mse.size(), 150u);
  // The per-step loss is noisy (a random timestep per image): compare means of the first and last 30 steps.
  const double first = std::accumulate(mse.begin(), mse.begin() + 30, 0.0) / 30;
  const double last = std::accumulate(mse.end() - 30, mse.end(), 0.0) / 30;
  EXPECT_LT(last, 0.5 * first) << "first 30 steps " << first << ", last 30 steps " << last;
}

TEST(FashionMnist, CheckpointsCarryTheClassNames) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  auto data = train::make_subset(train::load_fashion_mnist(train::default_fashion_mnist_dir(), "train"), 8);
  EXPECT_EQ(data->class_names().at(7), "Sneaker");
  train::TrainOptions o;
  o.batch_size = 4;
  o.max_steps = 1;
  o.run_dir = temp_path("fmnist_names");
  std::filesystem::remove_all(o.run_dir);
  ModelConfig c = tiny_lit_config();
  c.input_size = 32;
  c.in_channels = 1;
  train::Trainer trainer(fresh_model(c, 2), nullptr, data, o);
  trainer.run();
  const LoadedModel saved = load_model(train::find_checkpoint(o.run_dir) + "/ema.safetensors");
  EXPECT_EQ(class_names_for_model(10, saved.metadata).names.at(9), "Ankle boot");
}

}  // namespace
}  // namespace lit::test
