// lit-studio's worker thread with the tiny fixture DiT and VAE: loading, generating, cancelling within a
// step, and errors that leave the state usable.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "app/state/generator.h"
#include "model/backbone/dit.h"
#include "model/backbone/model_io.h"
#include "model/vae/vae.h"
#include "sampler/generation.h"
#include "tests/test_util.h"

namespace lit::studio {
namespace {

using test::fixture;
using test::temp_path;

Settings tiny_settings() {
  Settings s;
  s.model_path = fixture("dit/dit_tiny.pt");
  s.vae_path = fixture("vae/tiny_sd_vae");
  s.conditioning = {Conditioning::Kind::Class, 3};
  s.sampler = "ddim";
  s.steps = 3;
  s.seed = 11;
  s.preview_every = 1;
  return s;
}

// Polls until `done` holds or 60 s pass.
template <typename F>
bool wait_for(F done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

TEST(StudioGenerator, LoadsThenGeneratesReproducibleImages) {
  Generator g;
  EXPECT_FALSE(g.busy());
  EXPECT_FALSE(g.model());
  Settings s = tiny_settings();
  ASSERT_TRUE(g.load(s));
  EXPECT_TRUE(g.busy());
  EXPECT_FALSE(g.generate(s, 1)) << "one job at a time";
  g.wait_idle();
  Progress p = g.progress();
  ASSERT_EQ(p.outcome, Outcome::Done) << p.error;
  const auto info = g.model();
  ASSERT_TRUE(info);
  EXPECT_EQ(info->num_classes, 10);
  EXPECT_EQ(info->image_size, 64);  // 8 latent pixels x 8
  EXPECT_GT(info->parameters, 0);
  EXPECT_EQ(info->classes.names.size(), 10u);
  EXPECT_EQ(info->device, "cpu");

  s.batch_count = 2;
  ASSERT_TRUE(g.generate(s, 11));
  g.wait_idle();
  p = g.progress();
  ASSERT_EQ(p.outcome, Outcome::Done) << p.error;
  EXPECT_EQ(p.image, 2);
  EXPECT_EQ(p.step, 3);
  EXPECT_GT(p.preview_version, 0);
  EXPECT_GT(p.its_per_s, 0);
  std::vector<GeneratedImage> images = g.take_images();
  ASSERT_EQ(images.size(), 2u);
  EXPECT_TRUE(g.take_images().empty());
  EXPECT_EQ(images[0].pixels.sizes(), (at::IntArrayRef{64, 64, 3}));
  EXPECT_EQ(images[1].params.get("Seed"), "12");
  EXPECT_EQ(images[1].params.get("Image index"), "1");
  EXPECT_EQ(images[1].params.get("Class"), "3");
  EXPECT_EQ(images[1].settings.seed, 12u);

  // The second image's settings make it again as the first image of a run.
  Settings again = images[1].settings;
  again.batch_count = 1;
  ASSERT_TRUE(g.generate(again, again.seed));
  g.wait_idle();
  std::vector<GeneratedImage> redo = g.take_images();
  ASSERT_EQ(redo.size(), 1u);
  EXPECT_TRUE(at::equal(redo[0].pixels, images[1].pixels));
}

TEST(StudioGenerator, ImagesAreThoseOfLitGenerate) {
  // `lit generate` samples a whole batch at once with the same per-image seeds, guidance and decoding; the
  // studio samples image by image. The images agree (to float rounding of the batched kernels).
  Settings s = tiny_settings();
  s.batch_count = 3;
  s.cfg_scale = 3;
  Generator g;
  ASSERT_TRUE(g.generate(s, 100));
  g.wait_idle();
  ASSERT_EQ(g.progress().outcome, Outcome::Done) << g.progress().error;
  const std::vector<GeneratedImage> images = g.take_images();
  ASSERT_EQ(images.size(), 3u);

  LoadedModel loaded = load_model(s.model_path);
  const AutoencoderKL vae = load_vae(s.vae_path);
  SamplingSettings ss;
  ss.sampler = "ddim";
  ss.steps = s.steps;
  ss.guidance.scale = 3;
  ss.guidance.null_class = 10;
  DiT model = loaded.model;
  const ClassConditionalFn forward = [model](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) mutable {
    return model->forward(x, t, y);
  };
  const at::Tensor latents = sample_batch(forward, {4, 8, 8}, at::full({3}, 3, at::kLong), 100, 0, ss, at::kCPU);
  const at::NoGradGuard no_grad;
  const at::Tensor pixels = to_uint8_nhwc(vae.decode(vae.from_model_space(latents)));
  for (int64_t i = 0; i < 3; ++i) {
    const at::Tensor diff = (images[static_cast<size_t>(i)].pixels.to(at::kInt) - pixels[i].to(at::kInt)).abs();
    EXPECT_LE(diff.max().item<int>(), 1) << "image " << i;
  }
}

TEST(StudioGenerator, CancelStopsWithinAStepAndTheNextRunWorks) {
  Generator g;
  Settings s = tiny_settings();
  s.sampler = "ddpm";
  s.steps = 1000;
  s.preview_every = 0;
  ASSERT_TRUE(g.generate(s, 5));
  ASSERT_TRUE(wait_for([&] { return g.progress().step >= 3 || !g.busy(); }));
  ASSERT_TRUE(g.busy()) << g.progress().error;
  g.cancel();
  // Read after cancelling: the step running then may still finish, no later one may.
  const int64_t at_cancel = g.progress().step;
  g.wait_idle();
  const Progress p = g.progress();
  EXPECT_EQ(p.outcome, Outcome::Cancelled);
  EXPECT_EQ(p.phase, Phase::Idle);
  EXPECT_LE(p.step, at_cancel + 1) << "stops within one step";
  EXPECT_NE(p.message.find("cancelled"), std::string::npos) << p.message;
  EXPECT_TRUE(g.take_images().empty());

  s.steps = 2;
  ASSERT_TRUE(g.generate(s, 5));
  g.wait_idle();
  EXPECT_EQ(g.progress().outcome, Outcome::Done) << g.progress().error;
  EXPECT_EQ(g.take_images().size(), 1u);
}

TEST(StudioGenerator, ErrorsAreReportedAndTheStateStaysUsable) {
  Generator g;
  Settings bad = tiny_settings();
  bad.model_path = temp_path("no_such_model.pt");
  ASSERT_TRUE(g.load(bad));
  g.wait_idle();
  Progress p = g.progress();
  EXPECT_EQ(p.outcome, Outcome::Failed);
  EXPECT_NE(p.error.find("no_such_model.pt"), std::string::npos) << p.error;
  EXPECT_EQ(p.error.find('\n'), std::string::npos) << "one line";
  EXPECT_FALSE(g.model());

  // A good load, then failures that keep it loaded.
  const Settings good = tiny_settings();
  ASSERT_TRUE(g.load(good));
  g.wait_idle();
  ASSERT_EQ(g.progress().outcome, Outcome::Done) << g.progress().error;

  Settings no_vae = good;  // a latent model cannot make images without a VAE
  no_vae.vae_path.clear();
  ASSERT_TRUE(g.generate(no_vae, 0));
  g.wait_idle();
  EXPECT_EQ(g.progress().outcome, Outcome::Failed);
  EXPECT_NE(g.progress().error.find("VAE"), std::string::npos) << g.progress().error;

  Settings bad_vae = good;
  bad_vae.vae_path = fixture("dit");  // a folder without a VAE
  ASSERT_TRUE(g.load(bad_vae));
  g.wait_idle();
  EXPECT_EQ(g.progress().outcome, Outcome::Failed);
  EXPECT_FALSE(g.progress().error.empty());

  Settings bad_steps = good;
  bad_steps.steps = 0;
  ASSERT_TRUE(g.generate(bad_steps, 0));
  g.wait_idle();
  EXPECT_EQ(g.progress().outcome, Outcome::Failed);
  EXPECT_NE(g.progress().error.find("steps"), std::string::npos);

  Settings bad_class = good;
  bad_class.conditioning.class_id = 10;
  ASSERT_TRUE(g.generate(bad_class, 0));
  g.wait_idle();
  EXPECT_EQ(g.progress().outcome, Outcome::Failed);

  ASSERT_TRUE(g.model());
  EXPECT_EQ(g.model()->vae_path, good.vae_path) << "the last good model stays loaded";
  ASSERT_TRUE(g.generate(good, 0));
  g.wait_idle();
  EXPECT_EQ(g.progress().outcome, Outcome::Done) << g.progress().error;
  EXPECT_EQ(g.take_images().size(), 1u);
}

TEST(StudioGenerator, IncompatibleVaeIsRefused) {
  // A 1-channel pixel model with a 4-channel VAE.
  const std::string path = temp_path("pixel.safetensors");
  const ModelConfig c = ModelConfig::from_json(
      R"({"input_size":8,"patch_size":2,"in_channels":1,"hidden_size":32,"depth":1,"num_heads":2,"mlp_ratio":2.0,
          "class_dropout_prob":0.1,"num_classes":4,"learn_sigma":true,"attention":"linear","dwc_kernel":5})");
  save_model(path, DiT(c));
  Generator g;
  Settings s = tiny_settings();
  s.model_path = path;
  ASSERT_TRUE(g.load(s));
  g.wait_idle();
  EXPECT_EQ(g.progress().outcome, Outcome::Failed);
  EXPECT_NE(g.progress().error.find("channel"), std::string::npos) << g.progress().error;

  // Without the VAE it is a pixel model: gray 8x8 images, unconditional too.
  s.vae_path.clear();
  s.conditioning.kind = Conditioning::Kind::Unconditional;
  ASSERT_TRUE(g.generate(s, 0));
  g.wait_idle();
  ASSERT_EQ(g.progress().outcome, Outcome::Done) << g.progress().error;
  const auto images = g.take_images();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].pixels.sizes(), (at::IntArrayRef{8, 8, 1}));
  EXPECT_EQ(images[0].params.prompt, "unconditional");
}

}  // namespace
}  // namespace lit::studio
