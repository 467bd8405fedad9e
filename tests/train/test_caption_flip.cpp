// Caption folders whose captions name left and right: `lit extract-latents --no-flip` turns off the random
// mirror image that training otherwise applies to half the examples (it would swap "on the left" for
// "on the right" while keeping the caption).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "tests/test_util.h"
#include "tools/train/caption_data.h"

namespace lit {
namespace {

// A pixel-space caption folder of one 8x8 image lit only in its left half.
std::shared_ptr<train::CaptionedData> left_only_folder(const std::string& dir, bool random_flip) {
  train::CaptionFolderInfo info;
  info.max_length = 4;
  info.caption_channels = 2;
  info.image_size = 8;
  info.random_flip = random_flip;
  train::CaptionFolderWriter w(dir, info);
  at::Tensor image = at::zeros({8, 8, 3}, at::kByte);
  image.narrow(1, 0, 4).fill_(255);
  w.add(at::zeros({4, 2}), at::ones({4}, at::kLong), image);
  w.finish();
  return train::open_captioned_data(dir);
}

TEST(CaptionFlip, OffKeepsLeftOnTheLeftWhateverTheSeed) {
  const std::string dir = test::fresh_temp_dir("caption_noflip");
  const auto data = left_only_folder(dir, false);
  EXPECT_FALSE(data->info().random_flip);
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(dir + "/captions.json"))["random_flip"], false);
  for (uint64_t seed : {0u, 1u, 7u, 12345u}) {
    const at::Tensor x = data->get(0, seed).x;  // (3, 8, 8) in [-1, 1]
    EXPECT_GT(x.narrow(2, 0, 4).min().item<float>(), 0.9f) << "seed " << seed;
    EXPECT_LT(x.narrow(2, 4, 4).max().item<float>(), -0.9f) << "seed " << seed;
  }
}

TEST(CaptionFlip, OnMirrorsOddSeedsAsBefore) {
  const std::string dir = test::fresh_temp_dir("caption_flip");
  const auto data = left_only_folder(dir, true);
  EXPECT_TRUE(data->info().random_flip);
  EXPECT_GT(data->get(0, 0).x.narrow(2, 0, 4).min().item<float>(), 0.9f);
  EXPECT_GT(data->get(0, 1).x.narrow(2, 4, 4).min().item<float>(), 0.9f);  // mirrored: lit on the right
  // A folder written before the setting existed (no "random_flip" key) is read as flipped, as it was trained.
  nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/captions.json"));
  j.erase("random_flip");
  std::ofstream(dir + "/captions.json") << j.dump();
  EXPECT_TRUE(train::open_captioned_data(dir)->info().random_flip);
}

}  // namespace
}  // namespace lit
