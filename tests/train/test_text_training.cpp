// Text-to-image training: the caption readers (caption folder, JSONL), the cached caption folders of
// `lit extract-latents --text-encoder`, a distillation step of the tiny LiT-T2I from the tiny PixArt-Σ whose
// loss terms are computed by hand from the fixtures' model outputs, caption dropout, and exact resume.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/t2i/pixart_io.h"
#include "tests/t2i/t2i_test_util.h"
#include "tests/test_util.h"
#include "tools/train/caption_data.h"
#include "tools/train/text_trainer.h"
#include "weights/image_io.h"

namespace fs = std::filesystem;

namespace lit {
namespace {

using train::CaptionCondition;
using train::StepLosses;
using train::StepStats;
using train::TextTrainer;
using train::TrainOptions;

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

void write_png(const std::string& path, int64_t seed) {
  fs::create_directories(fs::path(path).parent_path());
  at::manual_seed(seed);
  write_image(path, at::randint(0, 256, {6, 6, 3}, at::kLong).to(at::kByte));
}

TEST(CaptionData, FolderReadsImagesWithTheirCaptionsInPathOrder) {
  const std::string dir = test::fresh_temp_dir("captions");
  write_png(dir + "/b.png", 1);
  write_text(dir + "/b.txt", "  a blue ball\n");
  write_png(dir + "/a.png", 2);
  write_text(dir + "/a.txt", "a red cube");
  write_png(dir + "/sub/c.png", 3);
  write_text(dir + "/sub/c.txt", "a green cone");
  write_text(dir + "/notes.md", "not an image");
  const auto items = train::read_captioned_images(dir);
  ASSERT_EQ(items.size(), 3u);
  EXPECT_EQ(items[0].image, dir + "/a.png");
  EXPECT_EQ(items[0].caption, "a red cube");
  EXPECT_EQ(items[1].caption, "a blue ball");
  EXPECT_EQ(items[2].image, dir + "/sub/c.png");
  EXPECT_EQ(items[2].caption, "a green cone");
}

TEST(CaptionData, MissingCaptionFileNamesTheImage) {
  const std::string dir = test::fresh_temp_dir("captions");
  write_png(dir + "/a.png", 1);
  write_text(dir + "/a.txt", "a red cube");
  write_png(dir + "/b.png", 2);
  const std::string e = test::error_of([&] { train::read_captioned_images(dir); });
  EXPECT_NE(e.find(dir + "/b.png: no caption beside it"), std::string::npos) << e;
  EXPECT_NE(e.find("b.txt"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  EXPECT_NE(test::error_of([&] {
              train::read_captioned_images(test::fresh_temp_dir("empty-missing"));
            }).find("expected a caption folder"),
            std::string::npos);
}

TEST(CaptionData, JsonlWithRelativePathsAndItsErrors) {
  const std::string dir = test::fresh_temp_dir("jsonl");
  write_png(dir + "/img/a.png", 1);
  write_png(dir + "/img/b.png", 2);
  write_text(
      dir + "/list.jsonl",
      "{\"image\": \"img/a.png\", \"caption\": \"a red cube\"}\n\n{\"image\": \"img/b.png\", \"caption\": \"x\"}\n");
  const auto items = train::read_captioned_images(dir + "/list.jsonl");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].image, (fs::path(dir) / "img/a.png").string());
  EXPECT_EQ(items[0].caption, "a red cube");
  EXPECT_EQ(items[1].caption, "x");

  write_text(dir + "/bad.jsonl", "{\"image\": \"img/a.png\", \"caption\": \"ok\"}\n{\"image\": \"img/b.png\"}\n");
  std::string e = test::error_of([&] { train::read_captioned_images(dir + "/bad.jsonl"); });
  EXPECT_NE(e.find("bad.jsonl line 2: no \"caption\" for img/b.png"), std::string::npos) << e;
  write_text(dir + "/gone.jsonl", "{\"image\": \"img/zzz.png\", \"caption\": \"ok\"}\n");
  e = test::error_of([&] { train::read_captioned_images(dir + "/gone.jsonl"); });
  EXPECT_NE(e.find("line 1: "), std::string::npos) << e;
  EXPECT_NE(e.find("zzz.png: no such image"), std::string::npos) << e;
  write_text(dir + "/junk.jsonl", "not json\n");
  EXPECT_NE(
      test::error_of([&] { train::read_captioned_images(dir + "/junk.jsonl"); }).find("line 1: not a JSON object"),
      std::string::npos);
}

// A caption folder of n examples for the tiny models: latents 4x8x8 (posteriors with small noise) and random
// 24x64 caption features with masks of 3 + i % 20 tokens.
std::shared_ptr<train::CaptionedData> tiny_caption_data(const std::string& dir, int64_t n) {
  at::manual_seed(77);
  train::LatentFolderInfo latents;
  latents.shape = {4, 8, 8};
  latents.classes = {"captioned"};
  latents.scaling_factor = 1.0;
  train::LatentFolderWriter lw(dir, latents);
  train::CaptionFolderInfo info;
  info.max_length = 24;
  info.caption_channels = 64;
  info.text_encoder = "random";
  train::CaptionFolderWriter cw(dir, info, /*shard_size=*/4);  // two shards for 6 examples
  for (int64_t i = 0; i < n; ++i) {
    lw.add(at::randn({2, 4, 8, 8}), at::full({2, 4, 8, 8}, -6.0), 0);
    const at::Tensor mask = (at::arange(24) < 3 + i % 20).to(at::kLong);
    cw.add(at::randn({24, 64}), mask);
  }
  lw.finish();
  cw.finish();
  return train::open_captioned_data(dir);
}

TEST(CaptionData, CaptionFolderRoundTripsFeaturesAcrossShards) {
  const std::string dir = test::fresh_temp_dir("data");
  auto data = tiny_caption_data(dir, 6);
  EXPECT_EQ(data->size(), 6);
  EXPECT_TRUE(data->latent());
  EXPECT_EQ(data->example_shape(), (std::vector<int64_t>{4, 8, 8}));
  EXPECT_EQ(data->get(5, 3).label, 5);  // the label is the example's index
  at::Tensor f, m;
  data->captions(at::tensor({5, 0}, at::kLong), &f, &m);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{2, 24, 64}));
  EXPECT_EQ(m[0].sum().item<int64_t>(), 3 + 5);
  EXPECT_EQ(m[1].sum().item<int64_t>(), 3);
  at::Tensor f5, m5;
  data->captions(at::tensor({5}, at::kLong), &f5, &m5);
  EXPECT_TRUE(at::equal(f5[0], f[0]));
}

// The fixture models: teacher pixart_tiny, student lit_t2i_tiny.
PixArtMS fixture_model(const std::string& file, const PixArtConfig& config) {
  PixArtLoadOptions o;
  o.config = config;
  return load_pixart(test::fixture("t2i/" + file), o).model;
}

at::Tensor io(const std::string& name) {
  return test::t2i_tensor("pixart_tiny/pixart_tiny_io.safetensors", name);
}

// The distillation terms of a step on the tiny models, by hand from the fixtures. The trainer runs both models
// at x_t = q_sample(x_start, t, noise); with noise = 0 and x_start = x_8x8 / sqrt(abar_t) (float32, as
// q_sample multiplies), x_t is the fixture's x_8x8 (to float rounding), so the teacher's output is
// pixart_tiny_io's out_8x8 and the student's lit_t2i_tiny_io's out_8x8 (same t = [10, 900], y, mask). Then
//   kd_eps = mean over C,H,W of (out_T[:, :4] - out_S[:, :4])^2,  kd_var likewise over channels 4..7,
//   mse    = mean of (0 - out_S[:, :4])^2,  total = loss + 0.5 kd_eps + 0.05 kd_var (the default lambdas).
TEST(TextDistillation, LossTermsMatchTheFixtureOutputsByHand) {
  PixArtMS teacher = fixture_model("pixart_tiny/pixart_tiny.safetensors", test::tiny_pixart_config());
  PixArtMS student = fixture_model("lit_t2i_tiny/lit_t2i_tiny.safetensors", test::tiny_lit_config());
  TrainOptions o;
  o.batch_size = 2;
  TextTrainer trainer(student, teacher, tiny_caption_data(test::fresh_temp_dir("data"), 2), o);

  const at::Tensor t = at::tensor({10, 900}, at::kLong);
  const GaussianDiffusion diffusion = GaussianDiffusion::create("");
  const at::Tensor sqrt_abar = at::tensor({static_cast<float>(diffusion.schedule().sqrt_alphas_cumprod[10]),
                                           static_cast<float>(diffusion.schedule().sqrt_alphas_cumprod[900])})
                                   .view({2, 1, 1, 1});
  const at::Tensor x = io("x_8x8");
  const at::Tensor x_start = x / sqrt_abar, noise = at::zeros_like(x);
  ASSERT_LE(test::max_rel(diffusion.q_sample(x_start, t, noise), x), 1e-6);
  const CaptionCondition c{io("y").view({2, 24, 64}), io("mask").view({2, 24})};

  const StepLosses l = trainer.losses(x_start, t, noise, c, c);
  const at::Tensor out_t = io("out_8x8");
  const at::Tensor out_s = test::t2i_tensor("lit_t2i_tiny/lit_t2i_tiny_io.safetensors", "out_8x8");
  const at::Tensor kd_eps = (out_t.narrow(1, 0, 4) - out_s.narrow(1, 0, 4)).pow(2).mean({1, 2, 3});
  const at::Tensor kd_var = (out_t.narrow(1, 4, 4) - out_s.narrow(1, 4, 4)).pow(2).mean({1, 2, 3});
  const at::Tensor mse = out_s.narrow(1, 0, 4).pow(2).mean({1, 2, 3});
  EXPECT_LE(test::max_rel(l.kd_eps, kd_eps), 1e-5);
  EXPECT_LE(test::max_rel(l.kd_var, kd_var), 1e-5);
  EXPECT_LE(test::max_rel(l.mse, mse), 1e-5);
  EXPECT_LE(test::max_rel(l.loss, l.mse + l.vb), 1e-6);
  EXPECT_LE(test::max_rel(l.total, l.loss + 0.5 * kd_eps + 0.05 * kd_var), 1e-5);
  EXPECT_GT(kd_eps.min().item<double>(), 0.0);  // the models differ: the terms are not trivially zero

  // A step trains the student and leaves the teacher alone.
  const at::Tensor before_s = student->final_layer->linear->weight.clone();
  const at::Tensor before_t = teacher->final_layer->linear->weight.clone();
  const StepStats s = trainer.step_on(x_start, c, t, noise);
  EXPECT_NEAR(s.kd_eps, kd_eps.mean().item<double>(), 1e-5 * kd_eps.mean().item<double>());
  EXPECT_FALSE(at::equal(student->final_layer->linear->weight, before_s));
  EXPECT_TRUE(at::equal(teacher->final_layer->linear->weight, before_t));
}

TEST(TextDistillation, CaptionDropoutIsTheNullCaptionWithTheCaptionsMask) {
  PixArtMS student = fixture_model("lit_t2i_tiny/lit_t2i_tiny.safetensors", test::tiny_lit_config());
  TrainOptions o;
  o.batch_size = 2;
  TextTrainer trainer(student, nullptr, tiny_caption_data(test::fresh_temp_dir("data"), 2), o);
  const CaptionCondition c{io("y").view({2, 24, 64}), io("mask").view({2, 24})};
  const CaptionCondition d = trainer.drop_captions(c, at::tensor({0, 1}).to(at::kBool));
  EXPECT_TRUE(at::equal(d.features[0], c.features[0]));
  EXPECT_TRUE(at::equal(d.features[1], student->y_embedder->y_embedding));
  EXPECT_TRUE(at::equal(d.mask, c.mask));
  // The model fed the dropped condition gives what the official force_drop_ids path gives.
  at::NoGradGuard no_grad;
  const at::Tensor x = io("x_8x8"), t = io("t");
  const at::Tensor ours = student->forward(x, t, d.features, d.mask);
  const at::Tensor forced = student->y_embedder->forward(c.features.unsqueeze(1), false, at::tensor({0, 1}));
  const at::Tensor direct = student->y_embedder->forward(d.features.unsqueeze(1), false);
  EXPECT_TRUE(at::equal(forced, direct));
  EXPECT_FALSE(at::equal(ours[1], student->forward(x, t, c.features, c.mask)[1]));
}

TEST(TextDistillation, DataOfAnotherCaptionWidthIsRefused) {
  PixArtConfig c = test::tiny_lit_config();
  c.caption_channels = 32;
  at::manual_seed(1);
  TrainOptions o;
  o.batch_size = 2;
  const std::string e =
      test::error_of([&] { TextTrainer(PixArtMS(c), nullptr, tiny_caption_data(test::fresh_temp_dir("data"), 2), o); });
  EXPECT_NE(e.find("the data's captions are 24 tokens of width 64 but the model takes 24 of width 32"),
            std::string::npos)
      << e;
  PixArtConfig teacher = test::tiny_pixart_config();
  teacher.depth = 3;
  EXPECT_NE(test::error_of([&] {
              train::check_text_teacher_student(teacher, test::tiny_lit_config());
            }).find("differ in depth (3 vs 2)"),
            std::string::npos);
}

TrainOptions resume_options(const std::string& run_dir) {
  TrainOptions o;
  o.batch_size = 2;
  o.max_steps = 4;
  o.lr = 1e-3;
  o.warmup_steps = 2;
  o.ema_decay = 0.9;
  o.label_dropout = 0.5;  // some captions dropped
  o.seed = 5;
  o.data_threads = 2;
  o.run_dir = run_dir;
  return o;
}

// Distills 4 steps straight, and 2 steps + resume + 2 steps: the same weights, EMA and log, bit for bit.
TEST(TextDistillation, ResumesBitForBit) {
  const std::string data_dir = test::fresh_temp_dir("data");
  auto data = tiny_caption_data(data_dir, 6);
  auto make = [&](const std::string& run, int64_t steps) {
    PixArtMS teacher = fixture_model("pixart_tiny/pixart_tiny.safetensors", test::tiny_pixart_config());
    at::manual_seed(9);
    PixArtMS student(test::tiny_lit_config());
    inherit_lit_t2i_from_pixart(student, state_dict(teacher));
    TrainOptions o = resume_options(run);
    o.max_steps = steps;
    return std::make_unique<TextTrainer>(student, teacher, data, o);
  };
  const std::string straight_dir = test::fresh_temp_dir("straight");
  auto straight = make(straight_dir, 4);
  straight->run();
  const std::string dir = test::fresh_temp_dir("stopped");
  make(dir, 2)->run();
  auto resumed = make(dir, 4);
  resumed->resume(dir);
  EXPECT_EQ(resumed->steps_done(), 2);
  resumed->run();
  const StateDict a = state_dict(straight->model()), b = state_dict(resumed->model());
  const StateDict ea = state_dict(straight->ema()), eb = state_dict(resumed->ema());
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    EXPECT_TRUE(at::equal(tensor, b.at(name))) << name;
    EXPECT_TRUE(at::equal(ea.at(name), eb.at(name))) << name;
  }
  // The logs agree but for the timings.
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) {
      nlohmann::json j = nlohmann::json::parse(l);
      j.erase("step_s");
      j.erase("images_per_s");
      lines.push_back(j.dump());
    }
    return lines;
  };
  const auto la = read(straight_dir + "/log.jsonl"), lb = read(dir + "/log.jsonl");
  ASSERT_EQ(la.size(), 4u);
  EXPECT_EQ(la, lb);
  // The checkpoint loads as a LiT-T2I model.
  const LoadedPixArt loaded = load_pixart(dir + "/checkpoints/step-0000004/ema.safetensors");
  EXPECT_TRUE(loaded.config.is_linear());
}

}  // namespace
}  // namespace lit
