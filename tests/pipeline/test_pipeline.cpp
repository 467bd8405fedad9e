// The generation pipeline both front ends call: the one parser each for dtype, device and sampler names, the
// request's checks, a Session on the tiny fixture DiT and VAE (labels, checks against the model, sampling,
// decoding), and the PNG parameters record read back into the same request.
#include <gtest/gtest.h>

#include "common/format.h"
#include "kernels/runtime/cuda_support.h"
#include "pipeline/parameters.h"
#include "pipeline/session.h"
#include "sampler/sampler.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::error_of;
using test::fixture;

GenerationRequest tiny_request() {
  GenerationRequest r;
  r.model = fixture("dit/dit_tiny.pt");
  r.vae = fixture("vae/tiny_sd_vae");
  r.sampler = "ddim";
  r.steps = 3;
  r.cfg_scale = 3;
  r.seed = 100;
  r.num_images = 3;
  r.conditioning.kind = Conditioning::Kind::Classes;
  r.conditioning.classes = {"3"};
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// One parser each
// ---------------------------------------------------------------------------------------------------------
TEST(PipelineNames, DtypeNamesAndTheirAliases) {
  EXPECT_EQ(dtype_from_name("fp32"), at::kFloat);
  EXPECT_EQ(dtype_from_name("float32"), at::kFloat);
  EXPECT_EQ(dtype_from_name("BF16"), at::kBFloat16);
  EXPECT_EQ(dtype_from_name("bfloat16"), at::kBFloat16);
  EXPECT_EQ(dtype_from_name("half"), at::kHalf);
  EXPECT_EQ(dtype_from_name("float16"), at::kHalf);
  EXPECT_FALSE(dtype_from_name("fp8"));
  for (const std::string& name : dtype_names()) EXPECT_EQ(dtype_name(parse_dtype(name)), name);
  EXPECT_EQ(error_of([] { parse_dtype("int8"); }), "--dtype 'int8': use fp32, bf16 or fp16");
  EXPECT_EQ(error_of([] { parse_dtype("int8", "precision"); }), "precision 'int8': use fp32, bf16 or fp16");
  EXPECT_THROW(dtype_name(at::kLong), Error);
}

TEST(PipelineNames, SamplerNamesBothFrontEndsAccept) {
  for (const char* alias : {"dpm++2m", "dpmsolver++", "dpm-solver++", "dpmpp2m", "DPM++ 2M"})
    EXPECT_EQ(canonical_sampler_name(alias), "dpm++2m") << alias;
  EXPECT_EQ(canonical_sampler_name("DDIM"), "ddim");
  EXPECT_EQ(canonical_sampler_name("ddpm"), "ddpm");
  EXPECT_FALSE(canonical_sampler_name("euler"));
  EXPECT_EQ(sampler_names(), (std::vector<std::string>{"ddpm", "ddim", "dpm++2m"}));
  EXPECT_EQ(make_sampler("dpmsolver++")->name(), make_sampler("dpm++2m")->name());
}

TEST(PipelineNames, DeviceNames) {
  EXPECT_EQ(kernels::parse_device("cpu"), at::Device(at::kCPU));
  EXPECT_EQ(kernels::parse_device("auto"), kernels::cuda_available() ? at::Device(at::kCUDA, 0) : at::kCPU);
  EXPECT_NE(error_of([] { kernels::parse_device("tpu"); }).find("--device 'tpu'"), std::string::npos);
  EXPECT_NE(error_of([] { kernels::parse_device("banana", "device"); }).find("device 'banana' is not a device"),
            std::string::npos);
  if (!kernels::cuda_available()) {
    EXPECT_NE(error_of([] { kernels::parse_device("cuda"); }).find("--device cuda: "), std::string::npos);
    EXPECT_EQ(kernels::available_devices(), std::vector<std::string>{"cpu"});
  }
}

TEST(PipelineNames, ShapesAndNumbers) {
  EXPECT_EQ(shape_string({2, 4, 32, 32}), "[2, 4, 32, 32]");
  EXPECT_EQ(shape_string({}), "[]");
  EXPECT_EQ(shape_string(at::zeros({3, 1}).sizes()), "[3, 1]");
  EXPECT_EQ(format_number(4), "4");
  EXPECT_EQ(format_number(1.5), "1.5");
  EXPECT_EQ(format_number(0.18215), "0.18215");
  EXPECT_EQ(std::stod(format_number(0.1 + 0.2)), 0.1 + 0.2);
}

// ---------------------------------------------------------------------------------------------------------
// The request
// ---------------------------------------------------------------------------------------------------------
TEST(PipelineRequest, CheckWritesCanonicalNamesAndNamesTheOption) {
  GenerationRequest r;
  r.sampler = "DPMSolver++";
  r.dtype = "bfloat16";
  check_request(r);
  EXPECT_EQ(r.sampler, "dpm++2m");
  EXPECT_EQ(r.dtype, "bf16");
  auto fails = [](const std::function<void(GenerationRequest&)>& change) {
    GenerationRequest bad;
    change(bad);
    return error_of([&] { check_request(bad); });
  };
  EXPECT_NE(fails([](GenerationRequest& x) { x.steps = 0; }).find("--steps"), std::string::npos);
  EXPECT_NE(fails([](GenerationRequest& x) { x.steps = 1001; }).find("--steps"), std::string::npos);
  EXPECT_NE(fails([](GenerationRequest& x) { x.sampler = "euler"; }).find("--sampler 'euler'"), std::string::npos);
  EXPECT_NE(fails([](GenerationRequest& x) { x.cfg_scale = -1; }).find("--cfg-scale"), std::string::npos);
  EXPECT_NE(fails([](GenerationRequest& x) { x.eta = -0.5; }).find("--eta"), std::string::npos);
  EXPECT_NE(fails([](GenerationRequest& x) { x.num_images = 0; }).find("--num-images"), std::string::npos);
  EXPECT_NE(fails([](GenerationRequest& x) { x.dtype = "fp8"; }).find("--dtype 'fp8'"), std::string::npos);
  EXPECT_NE(fails([](GenerationRequest& x) { x.device = "tpu"; }).find("--device"), std::string::npos);
  EXPECT_NE(fails([](GenerationRequest& x) { x.use_weights = "best"; }).find("--use-weights"), std::string::npos);
  EXPECT_EQ(parse_clamp_x0("on"), ClampX0::On);
  EXPECT_EQ(std::string(clamp_x0_name(ClampX0::Auto)), "auto");
  EXPECT_NE(error_of([] { parse_clamp_x0("maybe"); }).find("--clamp-x0 maybe"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------------------
// The session
// ---------------------------------------------------------------------------------------------------------
TEST(PipelineSession, PlansLabelsAndChecksAgainstTheModel) {
  Session session;
  GenerationRequest r = tiny_request();
  r.conditioning.classes = {"3", "7"};
  GenerationPlan plan = session.plan(r);
  EXPECT_EQ(plan.labels, (std::vector<int64_t>{3, 7, 3}));
  EXPECT_EQ(plan.image_size, 64);
  EXPECT_TRUE(plan.images);
  EXPECT_FALSE(plan.clamp_x0) << "a latent model does not clamp by default";
  EXPECT_EQ(session.info().num_classes, 10);

  r.conditioning.kind = Conditioning::Kind::AllClasses;
  r.num_images = 12;
  EXPECT_EQ(session.plan(r).labels[11], 1);
  r.conditioning.kind = Conditioning::Kind::RandomClasses;
  const std::vector<int64_t> drawn = session.plan(r).labels;
  EXPECT_EQ(session.plan(r).labels, drawn) << "drawn from the seed";
  r.conditioning.kind = Conditioning::Kind::Unconditional;
  EXPECT_EQ(session.plan(r).labels, std::vector<int64_t>(12, 10));
  r.clamp_x0 = ClampX0::On;
  EXPECT_TRUE(session.plan(r).clamp_x0);

  GenerationRequest bad = tiny_request();
  bad.conditioning.classes = {"10"};
  EXPECT_NE(error_of([&] { session.plan(bad); }).find("out of range"), std::string::npos);
  bad = tiny_request();
  bad.vae.clear();
  const std::string no_vae = error_of([&] { session.plan(bad); });
  EXPECT_NE(no_vae.find("--vae"), std::string::npos) << no_vae;
  EXPECT_FALSE(session.plan(bad, /*latents_only=*/true).images);
}

TEST(PipelineSession, KeepsTheLoadedModelForTheSameFiles) {
  Session session;
  const GenerationRequest r = tiny_request();
  EXPECT_FALSE(session.holds(r));
  session.load(r);
  const DiT first = session.model();
  EXPECT_TRUE(session.holds(r));
  GenerationRequest other = r;
  other.steps = 7;
  other.dtype = "float32";  // the same dtype spelled another way
  session.load(other);
  EXPECT_EQ(session.model().get(), first.get());
  other.dtype = "bf16";
  EXPECT_FALSE(session.holds(other));
}

TEST(PipelineSession, AnImageIsTheSameWhicheverRunItIsSampledIn) {
  Session session;
  const GenerationPlan plan = session.plan(tiny_request());
  const at::Tensor all = session.images(session.sample(plan, 0, 3));
  const at::Tensor second = session.images(session.sample(plan, 1, 1));
  EXPECT_EQ(all.sizes(), (at::IntArrayRef{3, 64, 64, 3}));
  const int max_diff = (all[1].to(at::kInt) - second[0].to(at::kInt)).abs().max().item<int>();
  EXPECT_LE(max_diff, 1) << "only the float rounding of batched kernels";
  EXPECT_TRUE(at::equal(session.images(session.sample(plan, 1, 1)), second)) << "same run, same bytes";
}

TEST(PipelineSession, ClampX0IsARequestChoice) {
  Session session;
  GenerationRequest r = tiny_request();
  r.num_images = 1;
  const at::Tensor automatic = session.sample(session.plan(r), 0, 1);
  r.clamp_x0 = ClampX0::Off;
  EXPECT_TRUE(at::equal(session.sample(session.plan(r), 0, 1), automatic)) << "auto is off for latents";
  r.clamp_x0 = ClampX0::On;
  EXPECT_FALSE(at::equal(session.sample(session.plan(r), 0, 1), automatic));
}

// ---------------------------------------------------------------------------------------------------------
// The parameters record
// ---------------------------------------------------------------------------------------------------------
TEST(PipelineParameters, ARecordReadsBackIntoTheSameRequest) {
  Session session;
  GenerationRequest r = tiny_request();
  r.num_images = 1;
  r.eta = 0.5;
  r.cfg_all_channels = true;
  r.clamp_x0 = ClampX0::On;
  const GenerationPlan plan = session.plan(r);
  const GenerationParams params = session.image_params(plan, 0);
  const std::string text = format_generation_params(params);
  EXPECT_EQ(text,
            "class 3\nSteps: 3, Sampler: ddim, CFG scale: 3, Seed: 100, Size: 64x64, Model: dit_tiny.pt, Class: 3, "
            "VAE: tiny_sd_vae, Guidance channels: all, Eta: 0.5, Clamp x0: on, Dtype: fp32, Architecture: \"" +
                session.info().architecture + "\", Run seed: 100, Image index: 0");

  GenerationRequest base = plan.request;  // the same files, device and execution; other sampling choices
  base.sampler = "ddpm";
  base.steps = 250;
  base.eta = 0;
  base.cfg_scale = 1;
  base.cfg_all_channels = false;
  base.clamp_x0 = ClampX0::Auto;
  base.seed = 5;
  base.conditioning = Conditioning{};
  const RestoredRequest back = request_from_params(parse_generation_params(text), base, &session.info());
  EXPECT_TRUE(back.notes.empty()) << back.notes.front();
  EXPECT_EQ(back.request, plan.request);

  // Image 2 of a run comes back as image 0 of a run seeded with its own seed.
  r.num_images = 3;
  const GenerationPlan three = session.plan(r);
  const RestoredRequest image2 = request_from_params(session.image_params(three, 2), base, &session.info());
  EXPECT_EQ(image2.request.seed, 102u);
  EXPECT_EQ(image2.request.num_images, base.num_images);
}

}  // namespace
}  // namespace lit
