// The data side of training: order, image folders (ADM centre crop, flips), pre-extracted latents.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "model/vae/vae.h"
#include "tests/train/train_test_util.h"
#include "tools/train/image_folder.h"
#include "tools/train/latent_dataset.h"
#include "tools/train/train_data.h"
#include "weights/image_io.h"

namespace lit::test {
namespace {

namespace fs = std::filesystem;

TEST(DataOrder, EachEpochIsAPermutationAndTheOrderIsSeeded) {
  train::DataOrder a(10, 3), b(10, 3), c(10, 4);
  std::set<int64_t> epoch0, epoch1;
  bool differs = false, other_seed_differs = false;
  for (int64_t p = 0; p < 10; ++p) {
    epoch0.insert(a.index_at(p));
    EXPECT_EQ(a.index_at(p), b.index_at(p));
    other_seed_differs |= a.index_at(p) != c.index_at(p);
  }
  for (int64_t p = 10; p < 20; ++p) {
    epoch1.insert(a.index_at(p));
    differs |= a.index_at(p) != b.index_at(p - 10);
  }
  EXPECT_EQ(epoch0.size(), 10u);
  EXPECT_EQ(epoch1.size(), 10u);
  EXPECT_TRUE(differs);
  EXPECT_TRUE(other_seed_differs);
}

TEST(BatchLoader, RanksTakeDisjointSlicesAndThreadsDoNotChangeBatches) {
  auto data = train::make_synthetic_data({1, 2, 2}, 3, 12);
  auto threads = [](int n) {
    train::LoaderOptions o;
    o.threads = n;
    return o;
  };
  train::BatchLoader one(data, 4, 9, 0, 0, 1, threads(1)), many(data, 4, 9, 0, 0, 1, threads(3));
  train::BatchLoader r0(data, 2, 9, 0, 0, 2, threads(2)), r1(data, 2, 9, 0, 1, 2, threads(2));
  const train::Batch b1 = one.next(), b3 = many.next(), h0 = r0.next(), h1 = r1.next();
  EXPECT_TRUE(at::equal(b1.x, b3.x));
  EXPECT_TRUE(at::equal(b1.x, at::cat({h0.x, h1.x})));
  EXPECT_EQ(one.position(), 4);
  EXPECT_EQ(r1.position(), 4);
}

TEST(BatchLoader, ExtrasAreMadeAheadFromEachBatchsLabels) {
  auto data = train::make_synthetic_data({1, 2, 2}, 5, 12);
  std::atomic<int> calls{0};
  train::LoaderOptions o;
  o.threads = 2;
  o.extra = [&calls](const at::Tensor& labels) {
    ++calls;
    return std::vector<at::Tensor>{labels * 10, labels.sum()};
  };
  train::BatchLoader loader(data, 3, 4, 0, 0, 1, o);
  for (int step = 0; step < 3; ++step) {
    const train::Batch b = loader.next();
    ASSERT_EQ(b.extra.size(), 2u);
    EXPECT_TRUE(at::equal(b.extra[0], b.labels * 10));
    EXPECT_EQ(b.extra[1].item<int64_t>(), b.labels.sum().item<int64_t>());
  }
  // The batch after the third is already under way (or made) when next() returns.
  EXPECT_GE(calls.load(), 3);
  EXPECT_LE(calls.load(), 4);
}

// ---------------------------------------------------------------------------------------------------------
// Image folders
// ---------------------------------------------------------------------------------------------------------
std::string make_image_folder(const std::string& root) {
  fs::remove_all(root);
  int i = 0;
  for (const char* cls : {"b_class", "a_class"})
    for (auto [h, w] : {std::pair<int64_t, int64_t>{40, 30}, {64, 64}}) {
      fs::create_directories(root + "/" + cls);
      // A horizontal ramp, so a flip is visible.
      at::Tensor img = at::linspace(0, 255, w).to(at::kByte).view({1, w, 1}).expand({h, w, 3}).contiguous();
      write_image(root + "/" + cls + "/img" + std::to_string(i++) + ".png", img);
    }
  return root;
}

TEST(ImageFolder, ListsClassesSortedAndCropsAndFlips) {
  const auto folder = train::open_image_folder(make_image_folder(temp_path("images")), 16);
  EXPECT_EQ(folder->size(), 4);
  EXPECT_EQ(folder->classes(), (std::vector<std::string>{"a_class", "b_class"}));
  EXPECT_EQ(folder->label(0), 0);
  EXPECT_EQ(folder->label(3), 1);
  const train::Example plain = folder->get(0, 2), flipped = folder->get(0, 3);
  EXPECT_EQ(plain.x.sizes(), (std::vector<int64_t>{3, 16, 16}));
  EXPECT_TRUE(at::equal(plain.x.flip({2}), flipped.x));
  EXPECT_LT(plain.x[0][8][0].item<float>(), plain.x[0][8][15].item<float>());  // the ramp rises left to right
  EXPECT_GE(plain.x.min().item<float>(), -1.0f);
  EXPECT_LE(plain.x.max().item<float>(), 1.0f);
}

TEST(ImageFolder, CenterCropKeepsAConstantImageConstant) {
  const at::Tensor grey = at::full({300, 500, 3}, 77, at::kByte);
  const at::Tensor crop = train::center_crop_arr(grey, 64);
  EXPECT_EQ(crop.sizes(), (std::vector<int64_t>{64, 64, 3}));
  EXPECT_TRUE(at::equal(crop, at::full({64, 64, 3}, 77, at::kByte)));
}

TEST(ImageFolder, MissingFolderAndEmptyClassAreNamed) {
  EXPECT_THROW(train::open_image_folder("/nonexistent-images", 16), Error);
  const std::string root = temp_path("empty");
  fs::remove_all(root);
  fs::create_directories(root + "/only_class");
  try {
    train::open_image_folder(root, 16);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only_class"), std::string::npos);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Latents: stored posteriors, a fresh draw each time.
// ---------------------------------------------------------------------------------------------------------
TEST(LatentFolder, StoresPosteriorsAndDrawsFreshScaledLatents) {
  const AutoencoderKL vae = load_vae(fixture("vae/tiny_sd_vae"));
  const auto images = train::open_image_folder(make_image_folder(temp_path("images")), 16, false);
  const std::string dir = temp_path("latents");
  fs::remove_all(dir);
  train::LatentFolderInfo info;
  info.shape = {4, 2, 2};
  info.classes = images->classes();
  info.scaling_factor = vae.scaling_factor();
  train::LatentFolderWriter writer(dir, info, /*shard_size=*/3);
  at::Tensor first_mean, first_logvar;
  {
    at::NoGradGuard no_grad;
    for (int64_t i = 0; i < images->size(); ++i) {
      const at::Tensor x = images_from_uint8(images->cropped(i));
      const DiagonalGaussian post = vae.encode(at::cat({x, x.flip({3})}));
      if (i == 0) first_mean = post.mean, first_logvar = post.logvar;
      writer.add(post.mean, post.logvar, images->label(i));
    }
  }
  writer.finish();
  ASSERT_TRUE(train::is_latent_folder(dir));
  const auto latents = train::open_latent_folder(dir);
  EXPECT_EQ(latents->size(), 4);  // across two shards
  EXPECT_EQ(latents->num_classes(), 2);
  EXPECT_EQ(latents->get(3, 0).label, 1);
  EXPECT_EQ(latents->get(0, 0).x.sizes(), (std::vector<int64_t>{4, 2, 2}));
  EXPECT_FALSE(at::equal(latents->get(0, 2).x, latents->get(0, 4).x));  // a fresh draw per seed
  EXPECT_TRUE(at::equal(latents->get(0, 2).x, latents->get(0, 2).x));   // and the same for the same seed
  // The average of many draws of the unflipped (even seeds) and flipped (odd) posteriors is the scaled mean.
  for (int flip = 0; flip < 2; ++flip) {
    at::Tensor sum = at::zeros({4, 2, 2});
    const int n = 400;
    for (int s = 0; s < n; ++s) sum += latents->get(0, static_cast<uint64_t>(2 * s + flip)).x;
    const at::Tensor expected = first_mean[flip] * vae.scaling_factor();
    const double spread = (0.5 * first_logvar[flip]).exp().max().item<double>() * vae.scaling_factor();
    EXPECT_LT((sum / n - expected).abs().max().item<double>(), 5 * spread / std::sqrt(n) + 1e-3) << "flip " << flip;
  }
}

}  // namespace
}  // namespace lit::test
