// `lit generate` and lit-studio's generator make the same PNG files, pixels and parameters text, for the same
// request: both run it through the one pipeline (pipeline/session.h). The CLI job runs in this process
// (tools/cli/generate_job.h), the studio's worker thread as the window does, and each image the studio
// makes is saved as its Save button does.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "app/state/generator.h"
#include "pipeline/parameters.h"
#include "tests/test_util.h"
#include "tools/cli/generate_job.h"
#include "weights/image_io.h"

namespace lit::studio {
namespace {

using test::fixture;

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(FrontEndParity, LitGenerateAndTheStudioWriteTheSameFiles) {
  Settings s;
  s.model_path = fixture("dit/dit_tiny.pt");
  s.vae_path = fixture("vae/tiny_sd_vae");
  s.conditioning = {Conditioning::Kind::Class, 3};
  s.sampler = "dpmsolver++";  // an alias both accept
  s.steps = 4;
  s.cfg_scale = 2.5;
  s.cfg_all_channels = true;
  s.batch_count = 3;
  s.preview_every = 0;

  cli::GenerateOptions o;
  o.request = request_of(s, /*run_seed=*/41);
  o.classes = {"3"};
  o.batch_size = 1;  // the studio samples image by image: the same shapes, the same kernels
  o.output = test::fresh_temp_dir("cli");
  o.quiet = true;
  ASSERT_EQ(cli::run_generate(o, nullptr), 3);

  Generator g;
  ASSERT_TRUE(g.generate(s, 41));
  g.wait_idle();
  ASSERT_EQ(g.progress().outcome, Outcome::Done) << g.progress().error;
  const std::vector<GeneratedImage> images = g.take_images();
  ASSERT_EQ(images.size(), 3u);
  for (size_t i = 0; i < images.size(); ++i) {
    HistoryEntry e;
    e.pixels = images[i].pixels;
    e.params = images[i].params;
    const std::string studio_png = test::temp_path("studio" + std::to_string(i) + ".png");
    save_entry(e, studio_png);
    const std::string cli_png = o.output + "/00000" + std::to_string(i) + ".png";
    const std::string cli_bytes = bytes_of(cli_png);
    ASSERT_FALSE(cli_bytes.empty()) << cli_png;
    EXPECT_EQ(bytes_of(studio_png), cli_bytes) << "image " << i;
    EXPECT_EQ(read_png_params(cli_png).get("Sampler"), "dpm++2m");
    EXPECT_EQ(read_png_params(cli_png).get("Seed"), std::to_string(41 + i));
  }
}

// A text-to-image request (tiny PixArt-Σ, tiny T5, PixArt's DPM-Solver++): the same PNG bytes from both, and the
// studio reads a PNG's record back into the prompt and negative prompt.
TEST(FrontEndParity, TextToImageGivesTheSameFilesAndThePromptReadsBack) {
  Settings s;
  s.model_path = fixture("t2i/pixart_tiny/pixart_tiny.pth");
  s.vae_path = fixture("vae/tiny_sd_vae");
  s.text_encoder_path = fixture("t2i/t5_tiny/single");
  s.conditioning.kind = Conditioning::Kind::Prompt;
  s.conditioning.prompt = "A Red CUBE On A Blue TABLE";
  s.conditioning.negative_prompt = "blurry";
  s.sampler = "dpm++2m";
  s.steps = 5;
  s.cfg_scale = 4.5;
  s.cfg_all_channels = true;
  s.batch_count = 2;
  s.preview_every = 0;
  s.width = 96;  // the model's own 64x64 is 0x0; multiples of 16 (the VAE's x8 times patch 2)
  s.height = 64;
  s.guidance_convention = GuidanceConvention::Diffusers;

  cli::GenerateOptions o;
  o.request = request_of(s, /*run_seed=*/7);
  o.has_prompt = true;
  o.prompt = s.conditioning.prompt;
  o.negative_prompt = s.conditioning.negative_prompt;
  o.sampler_given = o.steps_given = o.cfg_given = o.num_images_given = true;
  o.batch_size = 1;
  o.output = test::fresh_temp_dir("cli_t2i");
  o.quiet = true;
  ASSERT_EQ(cli::run_generate(o, nullptr), 2);

  Generator g;
  ASSERT_TRUE(g.generate(s, 7));
  g.wait_idle();
  ASSERT_EQ(g.progress().outcome, Outcome::Done) << g.progress().error;
  const std::vector<GeneratedImage> images = g.take_images();
  ASSERT_EQ(images.size(), 2u);
  for (size_t i = 0; i < images.size(); ++i) {
    HistoryEntry e;
    e.pixels = images[i].pixels;
    e.params = images[i].params;
    const std::string studio_png = test::temp_path("studio_t2i" + std::to_string(i) + ".png");
    save_entry(e, studio_png);
    const std::string cli_png = o.output + "/00000" + std::to_string(i) + ".png";
    const std::string cli_bytes = bytes_of(cli_png);
    ASSERT_FALSE(cli_bytes.empty()) << cli_png;
    EXPECT_EQ(bytes_of(studio_png), cli_bytes) << "image " << i;
  }

  // Reading the PNG back restores the prompt (and the image's own seed) into settings that make it again.
  Settings other = s;
  other.conditioning = Conditioning{};
  other.seed = 0;
  other.width = other.height = 0;
  other.guidance_convention = GuidanceConvention::Official;
  const std::optional<ModelInfo> model = g.model();
  ASSERT_TRUE(model);
  const RestoredSettings back = settings_from_params(read_png_params(o.output + "/000001.png"), other, &*model);
  EXPECT_TRUE(back.notes.empty()) << back.notes.front();
  EXPECT_EQ(back.settings.conditioning.kind, Conditioning::Kind::Prompt);
  EXPECT_EQ(back.settings.conditioning.prompt, "A Red CUBE On A Blue TABLE");
  EXPECT_EQ(back.settings.conditioning.negative_prompt, "blurry");
  EXPECT_EQ(back.settings.seed, 8u);
  EXPECT_EQ(back.settings.width, 96);
  EXPECT_EQ(back.settings.height, 64);
  EXPECT_EQ(back.settings.guidance_convention, GuidanceConvention::Diffusers);
  EXPECT_EQ(images[1].pixels.size(1), 96);
  EXPECT_EQ(images[1].pixels.size(0), 64);
  Settings again = back.settings;
  again.batch_count = 1;
  ASSERT_TRUE(g.generate(again, again.seed));
  g.wait_idle();
  const std::vector<GeneratedImage> remade = g.take_images();
  ASSERT_EQ(remade.size(), 1u);
  EXPECT_TRUE(remade[0].pixels.equal(images[1].pixels));
}

TEST(FrontEndParity, AStudioImageReadsBackIntoItsSettings) {
  Settings s;
  s.model_path = fixture("dit/dit_tiny.pt");
  s.vae_path = fixture("vae/tiny_sd_vae");
  s.conditioning = {Conditioning::Kind::Class, 6};
  s.sampler = "ddim";
  s.eta = 0.25;
  s.steps = 2;
  s.clamp_x0 = ClampX0::On;
  s.preview_every = 0;
  Generator g;
  ASSERT_TRUE(g.generate(s, 9));
  g.wait_idle();
  ASSERT_EQ(g.progress().outcome, Outcome::Done) << g.progress().error;
  const GeneratedImage image = g.take_images().at(0);
  EXPECT_EQ(image.params.get("Clamp x0"), "on");
  Settings base = s;  // the same files; every sampling choice different
  base.conditioning = {Conditioning::Kind::Unconditional, 0};
  base.sampler = "ddpm";
  base.eta = 0;
  base.steps = 250;
  base.clamp_x0 = ClampX0::Auto;
  base.seed = 1234;
  base.random_seed = true;
  const std::optional<ModelInfo> model = g.model();
  ASSERT_TRUE(model);
  const RestoredSettings back = settings_from_params(image.params, base, &*model);
  EXPECT_TRUE(back.notes.empty()) << back.notes.front();
  Settings want = s;
  want.seed = 9;
  EXPECT_EQ(back.settings, want);
}

}  // namespace
}  // namespace lit::studio
