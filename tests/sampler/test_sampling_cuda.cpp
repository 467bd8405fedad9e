// On a GPU: the noise is drawn on the CPU and moved, so a seeded image is the same image on either device
// (to float32 rounding). Skipped without a CUDA device.
#include <gtest/gtest.h>

#include "kernels/runtime/cuda_support.h"
#include "model/backbone/model_io.h"
#include "sampler/guidance.h"
#include "sampler/sampler.h"
#include "tests/sampler/gaussian_model.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::rel_error;

at::Tensor seeded_sample(const Sampler& sampler, const GaussianDiffusion& diffusion, const ModelFn& model,
                         at::Device device) {
  SeededNoise noise(99, 0, 3);
  const at::Tensor x_T = noise.draw({3, 4, 8, 8}).to(device);
  return sampler.sample(model, diffusion, x_T, noise);
}

TEST(SamplingCuda, SeededImagesAreTheSameOnTheGpuAsOnTheCpu) {
  if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
  const GaussianDiffusion diffusion = GaussianDiffusion::create("25");
  const ModelFn gaussian = test::gaussian_eps_model(test::GaussianData{}, [](int64_t t) { return std::cos(0.01 * t); });
  for (const char* name : {"ddpm", "ddim", "dpm++2m"}) {
    const auto sampler = make_sampler(name);
    const at::Tensor gpu = seeded_sample(*sampler, diffusion, gaussian, at::kCUDA);
    EXPECT_TRUE(gpu.is_cuda()) << name;
    EXPECT_LE(rel_error(gpu, seeded_sample(*sampler, diffusion, gaussian, at::kCPU)), 1e-5) << name;
  }

  // The tiny DiT, guided, on each device.
  ModelConfig config = ModelConfig::from_json_file(test::fixture("dit/config.json"));
  ModelLoadOptions on_gpu{config};
  on_gpu.device = at::kCUDA;
  DiT cpu = load_model(test::fixture("dit/dit_tiny.pt"), {config}).model;
  DiT gpu = load_model(test::fixture("dit/dit_tiny.pt"), on_gpu).model;
  const at::Tensor labels = at::tensor(std::vector<int64_t>{1, 5, 9});
  auto guided = [&](DiT& model) {
    return classifier_free_guidance(
        [&model](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) { return model->forward(x, t, y); },
        labels, {4.0, GuidanceChannels::DiT, 10});
  };
  const DDPMSampler ddpm;
  const at::Tensor a = seeded_sample(ddpm, diffusion, guided(gpu), at::kCUDA);
  const at::Tensor b = seeded_sample(ddpm, diffusion, guided(cpu), at::kCPU);
  EXPECT_LE(rel_error(a, b), 1e-4);  // the model's own GPU/CPU agreement, accumulated over 25 steps
}

// Coefficients gathered on the GPU (from tables moved there once, t never read back) are the CPU's gathers,
// bit for bit, for every table, float32 and float64, and for the original timesteps; a copied diffusion
// gathers from its own tables.
TEST(SamplingCuda, DeviceGathersEqualTheHostGathers) {
  if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
  const GaussianDiffusion diffusion = GaussianDiffusion::create("50");
  const DiffusionSchedule& s = diffusion.schedule();
  const at::Tensor t = at::tensor(std::vector<int64_t>{0, 1, 17, 49, 49, 3});
  for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
    const at::Tensor like = at::zeros({6, 2, 3, 3}, dtype);
    for (const std::vector<double>* table : {&s.betas, &s.alphas_cumprod_prev, &s.sqrt_recipm1_alphas_cumprod,
                                             &s.posterior_log_variance_clipped, &s.posterior_mean_coef2}) {
      const at::Tensor gpu = diffusion.extract(*table, t.cuda(), like.cuda());
      EXPECT_TRUE(gpu.is_cuda());
      EXPECT_TRUE(at::equal(gpu.cpu(), diffusion.extract(*table, t, like)));
    }
  }
  EXPECT_TRUE(at::equal(diffusion.original_timesteps(t.cuda()).cpu(), diffusion.original_timesteps(t)));
  const GaussianDiffusion copy = diffusion;  // its own tables, its own (empty) cache
  const at::Tensor like = at::zeros({6, 1}).cuda();
  EXPECT_TRUE(at::equal(copy.extract(copy.schedule().alphas_cumprod, t.cuda(), like).cpu(),
                        diffusion.extract(s.alphas_cumprod, t, at::zeros({6, 1}))));
}

}  // namespace
}  // namespace lit
