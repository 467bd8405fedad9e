// `lit extract-latents --text-encoder`, `lit train` and `lit distill` on text models, as a user runs them: a
// tiny caption folder (PNGs + .txt), its captions encoded once with the fixture T5, a tiny pixel-space PixArt
// trained a few steps (and resumed), and a LiT-T2I distilled from it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/t2i/pixart_io.h"
#include "tests/test_util.h"
#include "weights/image_io.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

namespace fs = std::filesystem;
using test::fixture;
using test::line_count;
using test::run_command;

const std::string kLit = LIT_CLI_PATH;

// Four 10x12 PNGs with captions; "a red cube" is prompt 1 of the T5 fixture.
std::string caption_folder(const std::string& dir) {
  const char* captions[] = {"a red cube", "a blue ball on a table", "a green cone", "a yellow star in the sky"};
  fs::create_directories(dir);
  at::manual_seed(3);
  for (int i = 0; i < 4; ++i) {
    const std::string stem = dir + "/img" + std::to_string(i);
    write_image(stem + ".png", at::randint(0, 256, {10, 12, 3}, at::kLong).to(at::kByte));
    std::ofstream(stem + ".txt") << captions[i] << "\n";
  }
  return dir;
}

const char* kPixArtConfig = R"({"model": "PixArtMS", "input_size": 8, "patch_size": 2, "in_channels": 3,
  "hidden_size": 64, "depth": 2, "num_heads": 4, "caption_channels": 64, "model_max_length": 24,
  "pe_interpolation": 1.0})";

TEST(CliTrainText, ExtractTrainResumeAndDistillOnCaptions) {
  const std::string root = test::fresh_temp_dir("t2i");
  const std::string caps = caption_folder(root + "/caps"), data = root + "/data", config = root + "/pixart.json";
  std::ofstream(config) << kPixArtConfig;
  const std::string t5 = fixture("t2i/t5_tiny/single");

  auto r = run_command(kLit + " extract-latents --text-encoder " + t5 + " --data " + caps +
                       " --image-size 8 --max-length 24 -o " + data);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("4 captions (24x64 T5 features + mask) and 8x8 pixel crops (no VAE)"), std::string::npos)
      << r.output;
  // The cached features of "a red cube" (img0, sorted first) are the fixture's T5 output for it.
  const SafetensorsFile shard = SafetensorsFile::open(data + "/captions-00000.safetensors");
  const SafetensorsFile ref = SafetensorsFile::open(fixture("t2i/t5_tiny/t5_outputs.safetensors"));
  EXPECT_LE(test::rel_error(shard.tensor("features")[0], ref.tensor("last_hidden_state_L24")[1]), 1e-5);
  EXPECT_TRUE(at::equal(shard.tensor("mask")[0], ref.tensor("attention_mask_L24")[1]));
  EXPECT_EQ(shard.tensor("images").sizes(), (std::vector<int64_t>{4, 8, 8, 3}));

  const std::string run = root + "/run";
  const std::string train = kLit + " train --config " + config + " --data " + data + " -o " + run +
                            " --batch-size 2 --lr 1e-3 --log-every 1 --checkpoint-every 2";
  r = run_command(train + " --max-steps 4");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("captions 24x64"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 4/4  loss "), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(run + "/checkpoints/step-0000004/ema.safetensors"));
  EXPECT_EQ(line_count(run + "/log.jsonl"), 4u);
  r = run_command(train + " --max-steps 6 --resume " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("at step 4"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("step 4/6"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step 6/6"), std::string::npos) << r.output;
  EXPECT_EQ(line_count(run + "/log.jsonl"), 6u);

  const std::string teacher = run + "/checkpoints/step-0000006/ema.safetensors", drun = root + "/distill";
  r = run_command(kLit + " distill --teacher " + teacher + " --data " + data + " -o " + drun +
                  " --batch-size 2 --max-steps 3 --log-every 1 --lambda-eps 0.5 --lambda-var 0.05");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("linear self-attention heads"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("inherited from the teacher: loaded 38 tensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("kd_eps"), std::string::npos) << r.output;
  const LoadedPixArt student = load_pixart(drun + "/checkpoints/step-0000003/ema.safetensors");
  EXPECT_TRUE(student.config.is_linear());
  // Inherited: the caption embedder is the teacher's (a few steps of training move it only a little).
  const LoadedPixArt t = load_pixart(teacher);
  EXPECT_LT(test::rel_error(student.model->y_embedder->fc1->weight, t.model->y_embedder->fc1->weight), 1e-2);

  r = run_command(kLit + " distill --teacher " + teacher + " --init scratch --data " + data +
                  " --batch-size 2 --max-steps 1");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("initialised from scratch"), std::string::npos) << r.output;
}

TEST(CliTrainText, MissingCaptionAndClassDataAreOneClearLine) {
  const std::string root = test::fresh_temp_dir("t2i");
  const std::string caps = caption_folder(root + "/caps");
  fs::remove(caps + "/img2.txt");
  auto r = run_command(kLit + " extract-latents --text-encoder " + fixture("t2i/t5_tiny/single") + " --data " + caps +
                       " --image-size 8 --max-length 24 -o " + root + "/data");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find(caps + "/img2.png: no caption beside it (expected " + caps + "/img2.txt)"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << r.output;

  const std::string config = root + "/pixart.json";
  std::ofstream(config) << kPixArtConfig;
  r = run_command(kLit + " train --config " + config + " --data " + caps + " --max-steps 1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("a text model trains on captioned data"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lit
