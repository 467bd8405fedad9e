// A T5 text encoder trained jointly with a text-to-image model (TextTrainer's joint mode): caption folders of
// token ids, the encoder's gradients and its share of the optimizer, caption dropout, a short run whose loss
// falls and whose encoder learns to tell the captions apart, exact resume, the checkpoint's T5 folders as
// generation loads them, and the one-line errors.
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "model/t2i/pixart_io.h"
#include "model/text/t5_init.h"
#include "model/text/text_encoder.h"
#include "model/text/tokenizer.h"
#include "tests/builtin_text_fixture.h"
#include "tests/t2i/t2i_test_util.h"
#include "tests/test_util.h"
#include "tools/train/caption_data.h"
#include "tools/train/text_trainer.h"

namespace fs = std::filesystem;

namespace lit {
namespace {

using train::CaptionCondition;
using train::JointTextEncoder;
using train::TextTrainer;
using train::TrainOptions;

const std::string kSpiece = test::fixture("t2i/t5_tiny/single/spiece.model");
const char* kCaptions[] = {"a red cube", "a blue ball on a table"};

// A small encoder of the tiny PixArt's caption width (64).
text::T5Config encoder_config(int64_t d_model = 64) {
  text::T5Config c = test::tiny_builtin_t5_config();  // the fixture tokenizer's vocabulary, 2 gated-gelu layers
  c.d_model = d_model;
  return c;
}

JointTextEncoder fresh_encoder(uint64_t seed, int64_t d_model = 64) {
  text::T5InitOptions o;
  o.seed = seed;
  return {text::init_t5_encoder(encoder_config(d_model), o), kSpiece, 1.0};
}

struct TokenDataOptions {
  int64_t n = 4, max_length = 24;
  std::string crc = {};  // empty: the fixture tokenizer's
};

// A token folder of latents 4x8x8 whose image is decided by its caption: "a red cube" is about +0.8
// everywhere, "a blue ball on a table" about -0.8 (example i has caption i % 2).
std::shared_ptr<train::CaptionedData> token_data(const std::string& dir, const TokenDataOptions& d = {}) {
  at::manual_seed(77);
  train::LatentFolderInfo latents;
  latents.shape = {4, 8, 8};
  latents.classes = {"captioned"};
  latents.scaling_factor = 1.0;
  train::LatentFolderWriter lw(dir, latents);
  train::CaptionFolderInfo info;
  info.max_length = d.max_length;
  info.tokens = true;
  info.tokenizer = kSpiece;
  info.tokenizer_crc32 = d.crc.empty() ? train::file_crc32_hex(kSpiece) : d.crc;
  info.vocab_size = 1100;
  train::CaptionFolderWriter cw(dir, info, /*shard_size=*/3);
  const text::T5Tokenizer tokenizer = text::T5Tokenizer::load(kSpiece);
  text::TokenizeOptions to;
  to.max_length = d.max_length;
  const text::TokenBatch b = tokenizer.batch({kCaptions[0], kCaptions[1]}, to);
  for (int64_t i = 0; i < d.n; ++i) {
    const double sign = i % 2 == 0 ? 1.0 : -1.0;
    lw.add(sign * 0.8 + 0.05 * at::randn({2, 4, 8, 8}), at::full({2, 4, 8, 8}, -8.0), 0);
    cw.add_tokens(b.input_ids[i % 2], b.attention_mask[i % 2]);
  }
  lw.finish();
  cw.finish();
  return train::open_captioned_data(dir);
}

PixArtMS fresh_pixart(uint64_t seed) {
  at::manual_seed(seed);
  return PixArtMS(test::tiny_pixart_config());
}

// The fixture's tiny PixArt-Σ: unlike a fresh one (zero cross-attention projections and final layer, as
// PixArt initialises them), its output depends on the caption from the first step.
PixArtMS fixture_pixart() {
  PixArtLoadOptions o;
  o.config = test::tiny_pixart_config();
  return load_pixart(test::fixture("t2i/pixart_tiny/pixart_tiny.safetensors"), o).model;
}

TEST(JointTextData, TokenFolderRoundTripsIdsAndRecordsTheTokenizer) {
  const std::string dir = test::fresh_temp_dir("tokens");
  const auto data = token_data(dir, {5});
  EXPECT_TRUE(data->holds_tokens());
  EXPECT_EQ(data->size(), 5);
  at::Tensor ids, mask;
  data->tokens(at::tensor({3, 0}, at::kLong), &ids, &mask);
  const text::TokenBatch ref = text::T5Tokenizer::load(kSpiece).batch({kCaptions[1], kCaptions[0]}, {24});
  EXPECT_TRUE(at::equal(ids, ref.input_ids));
  EXPECT_TRUE(at::equal(mask, ref.attention_mask));
  EXPECT_EQ(ids.scalar_type(), at::kLong);

  const nlohmann::json j = nlohmann::json::parse(std::ifstream(dir + "/captions.json"));
  EXPECT_EQ(j["kind"], "tokens");
  EXPECT_EQ(j["tokenizer"], kSpiece);
  EXPECT_EQ(j["tokenizer_crc32"], train::file_crc32_hex(kSpiece));
  EXPECT_EQ(j["tokenizer_crc32"].get<std::string>().size(), 8u);
  EXPECT_EQ(j["vocab_size"], 1100);
  EXPECT_EQ(j["caption_channels"], 0);
  EXPECT_NE(data->description().find("captions 24 token ids (" + kSpiece + ")"), std::string::npos);

  // A token folder has no features, and a features folder no token ids.
  at::Tensor f, m;
  EXPECT_NE(test::error_of([&] {
              data->captions(at::tensor({0}, at::kLong), &f, &m);
            }).find("holds caption token ids (lit extract-latents --tokenizer), not T5 features"),
            std::string::npos);
  const std::string fdir = test::fresh_temp_dir("features");
  train::CaptionFolderInfo info;
  info.max_length = 24;
  info.caption_channels = 64;
  info.image_size = 8;
  {
    train::CaptionFolderWriter w(fdir, info);
    w.add(at::randn({24, 64}), at::ones({24}, at::kLong), at::zeros({8, 8, 3}, at::kByte));
    EXPECT_NE(test::error_of([&] {
                w.add_tokens(ids[0], mask[0], at::zeros({8, 8, 3}, at::kByte));
              }).find("a features folder takes T5 features"),
              std::string::npos);
    w.finish();
  }
  const nlohmann::json fj = nlohmann::json::parse(std::ifstream(fdir + "/captions.json"));
  EXPECT_FALSE(fj.contains("kind"));  // the features layout is unchanged
  const auto features = train::open_captioned_data(fdir);
  EXPECT_FALSE(features->holds_tokens());
  EXPECT_NE(test::error_of([&] { features->tokens(at::tensor({0}, at::kLong), &f, &m); }).find("holds T5 features"),
            std::string::npos);
}

// The encoder is trained by the step: its gradients flow through the caption features, and a step where
// every caption is dropped (the null caption y_embedding in their place) leaves it untouched.
TEST(JointTextTraining, TheStepTrainsTheEncoderExceptThroughDroppedCaptions) {
  const auto data = token_data(test::fresh_temp_dir("data"));
  TrainOptions o;
  o.batch_size = 2;
  o.lr = 1e-3;
  at::Tensor ids, mask;
  data->tokens(at::tensor({0, 1}, at::kLong), &ids, &mask);
  CaptionCondition c;
  c.tokens = ids;
  c.mask = mask;
  at::manual_seed(1);
  const at::Tensor x = at::randn({2, 4, 8, 8}), noise = at::randn({2, 4, 8, 8}), t = at::tensor({10, 600}, at::kLong);

  for (const bool drop_all : {true, false}) {
    TextTrainer trainer(fixture_pixart(), nullptr, data, o, fresh_encoder(4));
    EXPECT_TRUE(trainer.joint());
    std::vector<at::Tensor> before;
    for (const auto& p : text::t5_parameters(trainer.text_encoder())) before.push_back(p.detach().clone());
    const at::Tensor final_before = trainer.model()->final_layer->linear->weight.detach().clone();
    const auto s = trainer.step_on(x, c, t, noise, at::full({2}, drop_all, at::kBool));
    EXPECT_GT(s.grad_norm, 0.0);
    EXPECT_FALSE(at::equal(trainer.model()->final_layer->linear->weight, final_before));
    const auto after = text::t5_parameters(trainer.text_encoder());
    size_t changed = 0;
    for (size_t i = 0; i < after.size(); ++i) changed += at::equal(after[i], before[i]) ? 0 : 1;
    if (drop_all)
      EXPECT_EQ(changed, 0u);
    else
      EXPECT_EQ(changed, after.size());  // every tensor of the encoder has a gradient
    // The EMA follows the encoder (decay 0.9999 of the default: a tiny step, but a step).
    if (!drop_all) {
      EXPECT_FALSE(at::equal(text::t5_parameters(trainer.text_encoder_ema())[1], before[1]));
    }
  }
}

// The trained features are what the step feeds the model: the encoder's output, under bf16 autocast too.
TEST(JointTextTraining, EncodesUnderTheModelsAutocast) {
  const auto data = token_data(test::fresh_temp_dir("data"));
  at::Tensor ids, mask;
  data->tokens(at::tensor({0, 1}, at::kLong), &ids, &mask);
  TrainOptions o;
  o.batch_size = 2;
  TextTrainer plain(fresh_pixart(3), nullptr, data, o, fresh_encoder(4));
  const at::Tensor f32 = plain.encode_captions(ids, mask);
  EXPECT_TRUE(at::equal(f32, plain.text_encoder().forward(ids, mask)));
  EXPECT_TRUE(f32.requires_grad());
  o.bf16 = true;
  TextTrainer mixed(fixture_pixart(), nullptr, data, o, fresh_encoder(4));
  const at::Tensor bf = mixed.encode_captions(ids, mask);
  EXPECT_EQ(bf.scalar_type(), at::kFloat);
  EXPECT_FALSE(at::equal(bf, f32));           // the matrix products ran in bf16
  EXPECT_LT(test::rel_error(bf, f32), 5e-2);  // ... and approximate the float32 ones
  CaptionCondition c;
  c.tokens = ids;
  c.mask = mask;
  at::manual_seed(2);
  const auto s = mixed.step_on(at::randn({2, 4, 8, 8}), c, at::tensor({5, 500}, at::kLong), at::randn({2, 4, 8, 8}));
  EXPECT_TRUE(std::isfinite(s.total));
  EXPECT_TRUE(std::isfinite(s.grad_norm));
}

// The diffusion loss (mse) at fixed timesteps and noise, every caption given.
double eval_loss(TextTrainer& trainer, const std::shared_ptr<train::CaptionedData>& data) {
  at::NoGradGuard no_grad;
  at::Tensor ids, mask;
  data->tokens(at::tensor({0, 1}, at::kLong), &ids, &mask);
  const at::Tensor x = at::cat({data->get(0, 0).x.unsqueeze(0), data->get(1, 0).x.unsqueeze(0)});
  const CaptionCondition c{trainer.encode_captions(ids, mask), mask};
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(123);
  double loss = 0;
  for (int64_t t : {50, 200, 400, 600, 800}) {
    const at::Tensor noise = at::randn({2, 4, 8, 8}, g);
    loss += trainer.losses(x, at::full({2}, t, at::kLong), noise, c, c).mse.mean().item<double>() / 5;
  }
  return loss;
}

// The mean of the model's x_0 prediction for images 0 ("a red cube", about +0.8) and 1 (about -0.8), with
// their captions or with the captions swapped, at timestep t, over 8 noise draws: (2,) for each.
std::pair<at::Tensor, at::Tensor> x0_means(TextTrainer& trainer, const std::shared_ptr<train::CaptionedData>& data,
                                           int64_t t) {
  at::NoGradGuard no_grad;
  at::Tensor ids, mask;
  data->tokens(at::tensor({0, 1}, at::kLong), &ids, &mask);
  const at::Tensor x = at::cat({data->get(0, 0).x.unsqueeze(0), data->get(1, 0).x.unsqueeze(0)});
  const GaussianDiffusion diffusion = GaussianDiffusion::create("");
  const double a = diffusion.schedule().sqrt_alphas_cumprod[t],
               s = diffusion.schedule().sqrt_one_minus_alphas_cumprod[t];
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(321);
  at::Tensor truth = at::zeros({2}), swapped = at::zeros({2});
  for (int k = 0; k < 8; ++k) {
    const at::Tensor noise = at::randn({2, 4, 8, 8}, g);
    const at::Tensor x_t = a * x + s * noise;
    for (const bool swap : {false, true}) {
      const at::Tensor order = swap ? at::tensor({1, 0}, at::kLong) : at::tensor({0, 1}, at::kLong);
      const at::Tensor f = trainer.encode_captions(ids.index_select(0, order), mask.index_select(0, order));
      const at::Tensor eps =
          trainer.model()->forward(x_t, at::full({2}, t, at::kLong), f, mask.index_select(0, order)).narrow(1, 0, 4);
      (swap ? swapped : truth) += ((x_t - s * eps) / a).mean({1, 2, 3}) / 8;
    }
  }
  return {truth, swapped};
}

TEST(JointTextTraining, ShortRunLowersTheLossAndLearnsToFollowTheCaptions) {
  const auto data = token_data(test::fresh_temp_dir("data"));
  TrainOptions o;
  o.batch_size = 4;
  o.max_steps = 150;
  o.lr = 2e-3;
  o.label_dropout = 0.1;
  o.seed = 7;
  o.data_threads = 1;
  TextTrainer trainer(fresh_pixart(3), nullptr, data, o, fresh_encoder(4));
  const double before = eval_loss(trainer, data);
  const auto [truth0, swapped0] = x0_means(trainer, data, 800);
  EXPECT_LT((truth0 - swapped0).abs().max().item<double>(), 1e-6);  // untrained: the caption plays no part
  std::vector<double> losses;
  trainer.run([&](const train::StepStats& s) { losses.push_back(s.total); });
  ASSERT_EQ(losses.size(), 150u);
  const double after = eval_loss(trainer, data);
  EXPECT_LT(after, 0.6 * before) << before << " -> " << after;
  double first = 0, last = 0;
  for (size_t i = 0; i < 20; ++i) {
    first += losses[i] / 20;
    last += losses[losses.size() - 1 - i] / 20;
  }
  EXPECT_LT(last, first);
  // At high noise levels the image is hardly visible in x_t and the caption, read through the jointly trained
  // encoder, moves the model's x_0 prediction towards its image: up for "a red cube" (+0.8), down for "a blue
  // ball on a table" (-0.8), compared with the other image's caption.
  for (int64_t t : {800, 900}) {
    const auto [truth, swapped] = x0_means(trainer, data, t);
    const at::Tensor shift = truth - swapped;
    EXPECT_GT(shift[0].item<double>(), 0.25) << "t " << t << ": " << truth << " vs swapped " << swapped;
    EXPECT_LT(shift[1].item<double>(), -0.25) << "t " << t << ": " << truth << " vs swapped " << swapped;
  }
}

TrainOptions resume_options(const std::string& run_dir, int64_t steps) {
  TrainOptions o;
  o.batch_size = 2;
  o.max_steps = steps;
  o.lr = 1e-3;
  o.warmup_steps = 2;
  o.ema_decay = 0.9;
  o.label_dropout = 0.5;  // some captions dropped
  o.grad_clip = 1.0;
  o.seed = 5;
  o.data_threads = 2;
  o.run_dir = run_dir;
  return o;
}

std::vector<std::string> log_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) {
    nlohmann::json j = nlohmann::json::parse(l);
    j.erase("step_s");
    j.erase("images_per_s");
    lines.push_back(j.dump());
  }
  return lines;
}

// 4 steps straight, and 2 steps + resume + 2 steps: the same model, EMA, encoder, encoder EMA and log, bit for
// bit; the checkpoint's T5 folders load as generation loads them.
TEST(JointTextTraining, ResumesBitForBitAndSavesLoadableT5Folders) {
  const auto data = token_data(test::fresh_temp_dir("data"), {6});
  auto make = [&](const std::string& run, int64_t steps) {
    return std::make_unique<TextTrainer>(fresh_pixart(9), nullptr, data, resume_options(run, steps), fresh_encoder(10));
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
  for (const auto& [name, tensor] : a) {
    EXPECT_TRUE(at::equal(tensor, b.at(name))) << name;
    EXPECT_TRUE(at::equal(ea.at(name), eb.at(name))) << name;
  }
  const auto ta = text::t5_named_parameters(straight->text_encoder());
  const auto tb = text::t5_named_parameters(resumed->text_encoder());
  const auto tea = text::t5_named_parameters(straight->text_encoder_ema());
  const auto teb = text::t5_named_parameters(resumed->text_encoder_ema());
  const auto t0 = text::t5_named_parameters(fresh_encoder(10).model);
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_TRUE(at::equal(ta[i].second, tb[i].second)) << ta[i].first;
    EXPECT_TRUE(at::equal(tea[i].second, teb[i].second)) << ta[i].first;
    EXPECT_FALSE(at::equal(tea[i].second, ta[i].second)) << ta[i].first;  // the EMA is not the raw weights
  }
  EXPECT_FALSE(at::equal(ta[0].second, t0[0].second));  // trained
  const auto la = log_lines(straight_dir + "/log.jsonl"), lb = log_lines(dir + "/log.jsonl");
  ASSERT_EQ(la.size(), 4u);
  EXPECT_EQ(la, lb);

  // The checkpoint: PixArt weights and two T5 folders with the tokenizer; TextEncoder (what lit generate's
  // --text-encoder loads) computes exactly the trained EMA encoder's features.
  const std::string ckpt = dir + "/checkpoints/step-0000004";
  for (const char* f : {"ema.safetensors", "text_encoder/config.json", "text_encoder/model.safetensors",
                        "text_encoder/spiece.model", "text_encoder_ema/model.safetensors"})
    EXPECT_TRUE(fs::exists(ckpt + "/" + f)) << f;
  EXPECT_EQ(load_pixart(ckpt + "/ema.safetensors").config, test::tiny_pixart_config());
  text::TextEncoderOptions to;
  to.max_length = 24;
  const text::TextEncoder te = text::TextEncoder::load(ckpt + "/text_encoder_ema", to);
  const text::TextEmbeddings e = te.encode({kCaptions[0], "a green cone"});
  at::NoGradGuard no_grad;
  EXPECT_TRUE(at::equal(e.embeddings, resumed->text_encoder_ema().forward(e.input_ids, e.attention_mask)));
  EXPECT_EQ(text::read_t5_config(ckpt + "/text_encoder/config.json").summary(), encoder_config().summary());
}

TEST(JointTextTraining, ResumeRefusesAMismatchedRun) {
  const auto data = token_data(test::fresh_temp_dir("data"));
  const std::string dir = test::fresh_temp_dir("run");
  TextTrainer(fresh_pixart(9), nullptr, data, resume_options(dir, 1), fresh_encoder(10)).run();
  // A joint run resumed by a trainer without the encoder, and a features run resumed with one.
  const auto features = test::fresh_temp_dir("features");
  {
    train::LatentFolderInfo li;
    li.shape = {4, 8, 8};
    li.classes = {"captioned"};
    li.scaling_factor = 1.0;
    train::LatentFolderWriter lw(features, li);
    train::CaptionFolderInfo ci;
    ci.max_length = 24;
    ci.caption_channels = 64;
    train::CaptionFolderWriter cw(features, ci);
    for (int i = 0; i < 2; ++i) {
      lw.add(at::zeros({2, 4, 8, 8}), at::zeros({2, 4, 8, 8}), 0);
      cw.add(at::randn({24, 64}), at::ones({24}, at::kLong));
    }
    lw.finish();
    cw.finish();
  }
  TextTrainer plain(fresh_pixart(9), nullptr, train::open_captioned_data(features), resume_options("", 1));
  std::string e = test::error_of([&] { plain.resume(dir); });
  EXPECT_NE(e.find("the run trained a text encoder jointly (text_encoder/): resume it with --text-encoder-config "
                   "and --tokenizer"),
            std::string::npos)
      << e;
  const std::string plain_dir = test::fresh_temp_dir("plain");
  TextTrainer(fresh_pixart(9), nullptr, train::open_captioned_data(features), resume_options(plain_dir, 1)).run();
  TextTrainer joint(fresh_pixart(9), nullptr, data, resume_options("", 1), fresh_encoder(10));
  e = test::error_of([&] { joint.resume(plain_dir); });
  EXPECT_NE(e.find("no text_encoder/ in the checkpoint"), std::string::npos) << e;
  // Another encoder shape.
  TextTrainer wider(fresh_pixart(9), nullptr, data, resume_options("", 1),
                    JointTextEncoder{[] {
                                       text::T5Config c = encoder_config();
                                       c.d_ff = 96;
                                       return text::init_t5_encoder(c);
                                     }(),
                                     kSpiece, 1.0});
  e = test::error_of([&] { wider.resume(dir); });
  EXPECT_NE(e.find("text_encoder/config.json: its encoder ("), std::string::npos) << e;
  EXPECT_NE(e.find("is not the one being trained"), std::string::npos) << e;
}

TEST(JointTextTraining, SetupErrorsAreOneLine) {
  TrainOptions o;
  o.batch_size = 2;
  const auto data = token_data(test::fresh_temp_dir("data"));
  auto error = [&](const std::function<void()>& fn) {
    const std::string e = test::error_of(fn);
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    return e;
  };
  // Encoder width != caption width.
  std::string e = error([&] { TextTrainer(fresh_pixart(1), nullptr, data, o, fresh_encoder(2, 32)); });
  EXPECT_NE(e.find("the text encoder is 32 wide (d_model) but the model reads captions 64 wide (caption_channels)"),
            std::string::npos)
      << e;
  // A token folder made with another tokenizer.
  const auto other = token_data(test::fresh_temp_dir("other"), {4, 24, "0badf00d"});
  e = error([&] { TextTrainer(fresh_pixart(1), nullptr, other, o, fresh_encoder(2)); });
  EXPECT_NE(e.find("the data was tokenized with " + kSpiece + " (crc32 0badf00d), not " + kSpiece + " (crc32 " +
                   train::file_crc32_hex(kSpiece) + "): extract the captions again with --tokenizer"),
            std::string::npos)
      << e;
  // Another caption length.
  const auto short_data = token_data(test::fresh_temp_dir("short"), {4, 16});
  e = error([&] { TextTrainer(fresh_pixart(1), nullptr, short_data, o, fresh_encoder(2)); });
  EXPECT_NE(e.find("the data's captions are 16 tokens but the model takes 24 (model_max_length): extract with "
                   "--max-length 24"),
            std::string::npos)
      << e;
  // Token ids without an encoder; a teacher in joint mode.
  e = error([&] { TextTrainer(fresh_pixart(1), nullptr, data, o); });
  EXPECT_NE(e.find("holds caption token ids (lit extract-latents --tokenizer): train a text encoder jointly"),
            std::string::npos)
      << e;
  e = error([&] { TextTrainer(fresh_pixart(1), fresh_pixart(2), data, o, fresh_encoder(2)); });
  EXPECT_NE(e.find("joint text-encoder training takes no teacher"), std::string::npos) << e;
  // A vocabulary smaller than the tokenizer's ids.
  e = error([&] {
    text::T5Config c = encoder_config();
    c.vocab_size = 600;
    TextTrainer(fresh_pixart(1), nullptr, data, o, JointTextEncoder{text::init_t5_encoder(c), kSpiece, 1.0});
  });
  EXPECT_NE(e.find("the tokenizer has 1100 token ids but the text encoder's vocab_size is 600"), std::string::npos)
      << e;
}

}  // namespace
}  // namespace lit
