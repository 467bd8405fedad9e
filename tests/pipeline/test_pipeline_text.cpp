// Text-to-image through the generation pipeline: a Session on the tiny PixArt-Σ / LiT-T2I fixtures and the tiny
// T5 (tests/fixtures/t2i) reproduces the fixture's end-to-end trajectory (prompts 14 and 5, 10 DPM-Solver++
// steps, guidance 4.5, the noise given); the guidance conventions; the checks (one line each); the PNG
// parameters record read back into the same request; the SDXL VAE's config (scaling factor, force_upcast).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "model/t2i/pixart_io.h"
#include "model/vae/vae.h"
#include "pipeline/parameters.h"
#include "pipeline/session.h"
#include "sampler/dpm_solver_vp.h"
#include "sampler/text_guidance.h"
#include "tests/t2i/t2i_test_util.h"

namespace lit {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::fixture;
using test::max_rel;

const std::vector<std::string> kE2EPrompts = {"pixel art of a tiny robot holding a sign that says \"hello world\"",
                                              "A Red CUBE On A Blue TABLE"};

at::Tensor e2e(const std::string& name) {
  return test::t2i_tensor("e2e/e2e_tiny.safetensors", name);
}

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  return path;
}

// The fixture's end-to-end settings as a request (latents only: the tiny PixArt has no VAE of its own).
GenerationRequest e2e_request(const std::string& model) {
  GenerationRequest r;
  r.model = model;
  r.text_encoder = fixture("t2i/t5_tiny/single");
  r.sampler = kTextSampler;
  r.steps = 10;
  r.cfg_scale = kTextCfgScale;
  r.num_images = 2;
  r.conditioning.kind = Conditioning::Kind::Prompt;
  r.conditioning.prompts = kE2EPrompts;
  return r;
}

std::string lit_config_file() {
  static const std::string path =
      write_file(test::temp_path("pipeline_lit_t2i_tiny.json"), test::tiny_lit_config().to_json(2));
  return path;
}

at::Tensor sample_all(Session& session, const GenerationRequest& r, const at::Tensor& noise) {
  const GenerationPlan plan = session.plan(r, /*latents_only=*/true);
  return session.sample(plan, 0, r.num_images, {}, noise);
}

TEST(PipelineText, SessionReproducesTheReferenceTrajectoryPixArt) {
  Session session;
  const at::Tensor latents = sample_all(session, e2e_request(fixture("t2i/pixart_tiny/pixart_tiny.pth")), e2e("noise"));
  EXPECT_LE(max_rel(latents, e2e("pixart_final_latent")), 1e-5);
  EXPECT_TRUE(session.info().text_conditional);
  EXPECT_EQ(session.info().max_length, 24);  // the tokenizer's length comes from the model
  EXPECT_EQ(session.text_encoder()->options().max_length, 24);

  // A diffusers folder does not record its caption length (its pipeline's default is 300 tokens): the
  // same trajectory with --max-length 24.
  GenerationRequest r = e2e_request(fixture("t2i/pixart_tiny/diffusers"));
  Session diffusers;
  diffusers.plan(r, true);
  EXPECT_EQ(diffusers.text_encoder()->options().max_length, 300);
  r.max_length = 24;
  EXPECT_FALSE(diffusers.holds(r));
  EXPECT_LE(max_rel(sample_all(diffusers, r, e2e("noise")), e2e("pixart_final_latent")), 1e-5);
  EXPECT_EQ(diffusers.text_encoder()->options().max_length, 24);
}

TEST(PipelineText, SessionReproducesTheReferenceTrajectoryLitT2I) {
  GenerationRequest r = e2e_request(fixture("t2i/lit_t2i_tiny/lit_t2i_tiny.safetensors"));
  r.config = lit_config_file();
  Session session;
  EXPECT_LE(max_rel(sample_all(session, r, e2e("noise")), e2e("lit_final_latent")), 1e-5);
}

// An image does not depend on the images sampled with it: its noise is seed + i, its prompt prompts[i].
TEST(PipelineText, ImagesAreTheSameAloneOrBatchedAndPromptsCycle) {
  GenerationRequest r = e2e_request(fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  r.num_images = 3;
  r.steps = 4;
  Session session;
  const GenerationPlan plan = session.plan(r, true);
  const at::Tensor all = session.sample(plan, 0, 3);
  const at::Tensor third = session.sample(plan, 2, 1);
  EXPECT_LE(max_rel(third, all.narrow(0, 2, 1)), 1e-5);
  EXPECT_EQ(plan.request.conditioning.prompt_of(2), kE2EPrompts[0]);
  // Image 2 has prompt 0 and seed 2: a one-prompt request with seed 2 makes it too.
  GenerationRequest one = r;
  one.conditioning.prompts.clear();
  one.conditioning.prompt = kE2EPrompts[0];
  one.seed = 2;
  one.num_images = 1;
  EXPECT_LE(max_rel(session.sample(session.plan(one, true), 0, 1), third), 1e-5);
  EXPECT_GT(max_rel(all.narrow(0, 0, 1), third), 1e-3);  // other noise: another image
}

// The diffusers pipeline's convention: the negative prompt with its own mask; the learned null caption.
TEST(PipelineText, GuidanceConventions) {
  const std::string model = fixture("t2i/pixart_tiny/pixart_tiny.pth");
  LoadedPixArt m = load_pixart(model);
  text::TextEncoderOptions to;
  to.max_length = 24;
  const text::TextEncoder encoder = text::TextEncoder::load(fixture("t2i/t5_tiny/single"), to);
  const text::TextEmbeddings cond = encoder.encode(kE2EPrompts);
  const text::TextEmbeddings null = encoder.encode({"blurry"});
  const TextConditionalFn eps = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                                    const at::Tensor& mask) { return m.model->forward_eps(x, t, y, mask); };
  auto reference = [&](const at::Tensor& null_caption, const at::Tensor& null_mask) {
    TextCondition c;
    c.caption = cond.embeddings.unsqueeze(1);
    c.mask = cond.attention_mask;
    c.null_caption = null_caption;
    c.null_mask = null_mask;
    DPMSolverOptions o;
    o.steps = 5;
    return dpm_solver_sample(text_guided_noise_fn(eps, c), NoiseScheduleVP::linear(), e2e("noise"), o);
  };

  GenerationRequest r = e2e_request(model);
  r.steps = 5;
  r.conditioning.negative_prompt = "blurry";
  Session session;
  const at::Tensor official = sample_all(session, r, e2e("noise"));
  EXPECT_LE(max_rel(official, reference(null.embeddings.unsqueeze(1), {})), 1e-5);
  r.guidance_convention = GuidanceConvention::Diffusers;
  const at::Tensor diffusers = sample_all(session, r, e2e("noise"));
  EXPECT_LE(max_rel(diffusers, reference(null.embeddings.unsqueeze(1), null.attention_mask)), 1e-5);
  EXPECT_GT(max_rel(diffusers, official), 1e-4);
  r.guidance_convention = GuidanceConvention::Official;
  r.learned_null_caption = true;
  const at::Tensor learned = sample_all(session, r, e2e("noise"));
  EXPECT_LE(max_rel(learned, reference(m.model->y_embedder->y_embedding.unsqueeze(0).unsqueeze(0), {})), 1e-5);
  // The cached negative prompt: the same tensors every time.
  EXPECT_EQ(&session.text_encoder()->null_embedding("blurry"), &session.text_encoder()->null_embedding("blurry"));
}

TEST(PipelineText, NonSquareSizesAndDdim) {
  GenerationRequest r = e2e_request(fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  r.width = 12;  // no VAE: pixels are latents; multiples of the patch (2)
  r.height = 8;
  r.sampler = "ddim";
  r.steps = 3;
  Session session;
  const GenerationPlan plan = session.plan(r, true);
  EXPECT_EQ(plan.latent_width, 12);
  EXPECT_EQ(plan.latent_height, 8);
  const at::Tensor x = session.sample(plan, 0, 2);
  EXPECT_EQ(x.sizes(), at::IntArrayRef({2, 4, 8, 12}));
  EXPECT_TRUE(at::isfinite(x).all().item<bool>());
  r.width = 13;
  EXPECT_EQ(error_of([&] { session.plan(r, true); }),
            "--width/--height 13x8: both must be multiples of 2 (the VAE's x1 times the patch size 2)");
}

TEST(PipelineText, BadInputIsOneClearLine) {
  const std::string pixart = fixture("t2i/pixart_tiny/pixart_tiny.pth");
  Session session;
  GenerationRequest r = e2e_request(pixart);
  r.text_encoder.clear();
  EXPECT_EQ(error_of([&] { session.plan(r, true); }),
            pixart + " is a text-to-image model: give its T5 text encoder folder (--text-encoder DIR)");

  r = e2e_request(pixart);
  r.conditioning = Conditioning{};
  r.conditioning.kind = Conditioning::Kind::Classes;
  r.conditioning.classes = {"3"};
  EXPECT_EQ(error_of([&] { session.plan(r, true); }),
            "--class: " + session.info().architecture +
                " is a text-to-image model, it takes a prompt (--prompt or --prompts-file), not classes");

  GenerationRequest c;
  c.model = fixture("dit/dit_tiny.pt");
  c.vae = fixture("vae/tiny_sd_vae");
  c.conditioning.kind = Conditioning::Kind::Prompt;
  c.conditioning.prompt = "a cat";
  const std::string message = error_of([&] { session.plan(c); });
  EXPECT_EQ(message.rfind("--prompt: ", 0), 0u) << message;
  EXPECT_NE(message.find("is a class-conditional model, it takes classes (--class), not a prompt"), std::string::npos)
      << message;

  // A text encoder of another width than the model's caption_channels: a tiny PixArt reading 32-wide captions.
  PixArtConfig narrow = test::tiny_pixart_config();
  narrow.caption_channels = 32;
  const std::string narrow_path = test::temp_path("pipeline_pixart_caption32.safetensors");
  save_pixart(narrow_path, PixArtMS(narrow));
  r = e2e_request(narrow_path);
  EXPECT_EQ(error_of([&] { Session().plan(r, true); }),
            "--text-encoder " + r.text_encoder +
                ": its T5 is 64 wide (d_model), the model reads captions 32 wide (caption_channels): use the text "
                "encoder the model was trained with");

  r = e2e_request(fixture("t2i/pixart_tiny/diffusers"));
  r.learned_null_caption = true;
  EXPECT_EQ(error_of([&] { session.plan(r, true); }),
            "--null-caption learned: " + r.model +
                " holds no learned null caption (y_embedding; diffusers checkpoints drop it): use --null-caption t5");
}

// A prompt request's PNG record: the prompt first, "Negative prompt:", the settings; read back it is the
// request of that image (its own seed, one image).
TEST(PipelineText, ParametersRecordReadsBackIntoTheSameRequest) {
  GenerationRequest r = e2e_request(fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  r.conditioning.negative_prompt = "low quality, blurry";
  r.width = 12;
  r.height = 8;
  r.guidance_convention = GuidanceConvention::Diffusers;
  r.max_length = 24;
  r.seed = 40;
  Session session;
  const GenerationPlan plan = session.plan(r, true);
  const GenerationParams p = session.image_params(plan, 1);
  const std::string text = format_generation_params(p);
  EXPECT_EQ(text.substr(0, text.find('\n')), kE2EPrompts[1]);
  EXPECT_NE(text.find("\nNegative prompt: low quality, blurry\nSteps: 10, Sampler: dpm++2m, CFG scale: 4.5, Seed: 41, "
                      "Size: 12x8, Model: pixart_tiny.pth, Text encoder: single, Guidance convention: diffusers"),
            std::string::npos)
      << text;

  GenerationRequest base = plan.request;
  base.conditioning = Conditioning{};
  base.width = base.height = 0;
  base.guidance_convention = GuidanceConvention::Official;
  base.steps = 250;
  const RestoredRequest back = request_from_params(parse_generation_params(text), base, &session.info());
  GenerationRequest expected = plan.request;
  expected.conditioning.prompts.clear();
  expected.conditioning.prompt = kE2EPrompts[1];
  expected.seed = 41;
  EXPECT_TRUE(back.request == expected);
  EXPECT_TRUE(back.notes.empty()) << back.notes.front();
  // The restored request makes the same image.
  const at::Tensor again = session.sample(session.plan(back.request, true), 0, 1);
  EXPECT_LE(max_rel(again, session.sample(plan, 1, 1)), 1e-5);
}

// The SDXL VAE (PixArt-Σ's): the scaling factor and force_upcast come from its config.json.
TEST(PipelineText, VaeScalingFactorAndUpcastFromConfig) {
  const std::string dir = test::fresh_temp_dir("pipeline_sdxl_like_vae");
  fs::create_directories(dir);
  std::ifstream in(fixture("vae/tiny_sd_vae/config.json"));
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  config = std::regex_replace(config, std::regex("\"scaling_factor\": 0.18215"), "\"scaling_factor\": 0.13025");
  write_file(dir + "/config.json", config);
  fs::copy_file(fixture("vae/tiny_sd_vae/diffusion_pytorch_model.safetensors"),
                dir + "/diffusion_pytorch_model.safetensors");
  const VaeConfig c = read_vae_config(dir + "/config.json");
  EXPECT_EQ(c.scaling_factor, 0.13025);
  EXPECT_TRUE(c.force_upcast);
  EXPECT_EQ(vae_dtype_for(at::kHalf, c), at::kFloat);  // SDXL's VAE overflows fp16: decoded in fp32
  VaeConfig fixed = c;
  fixed.force_upcast = false;  // an fp16-safe VAE stays fp16
  EXPECT_EQ(vae_dtype_for(at::kHalf, fixed), at::kHalf);
  EXPECT_EQ(vae_dtype_for(at::kBFloat16, c), at::kBFloat16);

  GenerationRequest r = e2e_request(fixture("t2i/pixart_tiny/pixart_tiny.pth"));
  r.vae = dir;
  r.num_images = 1;
  r.steps = 2;
  Session session;
  const GenerationPlan plan = session.plan(r);
  EXPECT_EQ(session.vae()->scaling_factor(), 0.13025);
  EXPECT_EQ(plan.width, 64);  // 8 latent pixels x 8
  const at::Tensor latents = session.sample(plan, 0, 1);
  const at::Tensor decoded = session.decode(latents);
  EXPECT_LE(max_rel(decoded, session.vae()->decode(latents / 0.13025)), 1e-6);
  EXPECT_EQ(session.images(latents).sizes(), at::IntArrayRef({1, 64, 64, 3}));
}

}  // namespace
}  // namespace lit

namespace lit {
namespace {

// A text model of 3 channels without a VAE works in pixel space (the built-in canvases are 64x64 RGB): its
// plan makes images, clamps x_0 by default as the class pixel models do, and its samples become RGB pixels.
// A 4-channel latent model without a VAE still needs --vae or --save-latents.
TEST(PipelineText, PixelSpaceModelsMakeImagesWithoutAVae) {
  PixArtConfig config = test::tiny_pixart_config();
  config.in_channels = 3;
  at::manual_seed(3);
  const std::string path = test::temp_path("pipeline_pixel_pixart.safetensors");
  save_pixart(path, PixArtMS(config));
  GenerationRequest r = e2e_request(path);
  r.steps = 2;
  Session session;
  const GenerationPlan plan = session.plan(r, /*latents_only=*/false);
  EXPECT_TRUE(plan.images);
  EXPECT_TRUE(plan.clamp_x0);
  const at::Tensor pixels = session.images(session.sample(plan, 0, 2));
  EXPECT_EQ(pixels.sizes(), (std::vector<int64_t>{2, config.input_size, config.input_size, 3}));
  EXPECT_EQ(pixels.scalar_type(), at::kByte);

  r.clamp_x0 = ClampX0::Off;
  EXPECT_FALSE(session.plan(r, false).clamp_x0);
  const std::string latent =
      error_of([&] { Session().plan(e2e_request(fixture("t2i/pixart_tiny/pixart_tiny.pth")), false); });
  EXPECT_NE(latent.find("4-channel latents: give a VAE"), std::string::npos) << latent;
}

}  // namespace
}  // namespace lit
