// Data-parallel training of a text-to-image model with its text encoder trained jointly: two ranks (Gloo on
// 127.0.0.1, as torchrun starts them) train the model and the encoder as one process does, to float32 summation
// order (see test_dist_train.cpp for the tolerance).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include "tests/dist/dist_test_util.h"
#include "weights/image_io.h"

namespace lit::test {
namespace {

const std::string kSpiece = fixture("t2i/t5_tiny/single/spiece.model");

TEST(DataParallel, JointTextEncoderWorldSize2EqualsWorldSize1) {
  const std::string root = fresh_temp_dir("joint");
  std::filesystem::create_directories(root + "/caps");
  const char* captions[] = {"a red cube", "a blue ball on a table", "a green cone", "a yellow star in the sky"};
  at::manual_seed(3);
  for (int i = 0; i < 8; ++i) {
    const std::string stem = root + "/caps/img" + std::to_string(i);
    write_image(stem + ".png", at::randint(0, 256, {8, 8, 3}, at::kLong).to(at::kByte));
    std::ofstream(stem + ".txt") << captions[i % 4] << "\n";
  }
  auto r = run_command(kLit + " extract-latents --tokenizer " + kSpiece + " --data " + root +
                       "/caps --image-size 8 --max-length 24 -o " + root + "/tokens");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ofstream(root + "/pixart.json")
      << R"({"model": "PixArtMS", "input_size": 8, "patch_size": 2, "in_channels": 3, "hidden_size": 64, "depth": 2,)"
         R"( "num_heads": 4, "caption_channels": 64, "model_max_length": 24, "pe_interpolation": 1.0})";
  std::ofstream(root + "/t5.json") << R"({"d_model": 64, "d_kv": 16, "num_heads": 4, "d_ff": 128, "num_layers": 2,)"
                                      R"( "feed_forward_proj": "gated-gelu"})";
  auto args = [&](int64_t steps) {
    return "train --config " + root + "/pixart.json --text-encoder-config " + root + "/t5.json --tokenizer " + kSpiece +
           " --data " + root + "/tokens --batch-size 4 --max-steps " + std::to_string(steps) +
           " --lr 1e-3 --ema-decay 0.9 --seed 11 --data-threads 1 --log-every 1";
  };
  const std::string one = root + "/ws1", two = root + "/ws2", init = root + "/init";
  r = run_command(kLit + " " + args(4) + " -o " + one);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto ranks = run_ranks(2, args(4) + " -o " + two);
  for (const auto& rank : ranks) ASSERT_EQ(rank.exit_code, 0) << rank.output;
  EXPECT_NE(ranks[0].output.find("ranks   2 (gloo, 2 images per rank and step"), std::string::npos) << ranks[0].output;
  r = run_command(kLit + " " + args(0) + " -o " + init);
  ASSERT_EQ(r.exit_code, 0) << r.output;

  const std::string last = "/checkpoints/step-0000004/";
  for (const char* file : {"model.safetensors", "ema.safetensors", "text_encoder/model.safetensors",
                           "text_encoder_ema/model.safetensors"}) {
    const double err = weights_rel_error(two + last + file, one + last + file);
    EXPECT_LE(err, 1e-5) << file;
    std::cout << "joint " << file << ": world size 2 vs 1, relative L2 difference " << err << "\n";
  }
  // Training moved the encoder far beyond the tolerance (the same seed starts the same encoder).
  EXPECT_GT(weights_rel_error(init + "/checkpoints/step-0000000/text_encoder/model.safetensors",
                              one + last + "text_encoder/model.safetensors"),
            1e-4);
  const auto l1 = log_losses(one), l2 = log_losses(two);
  ASSERT_EQ(l1.size(), 4u);
  ASSERT_EQ(l2.size(), 4u);
  for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l2[i], l1[i], 1e-5 * std::abs(l1[i])) << "step " << i + 1;
}

}  // namespace
}  // namespace lit::test
