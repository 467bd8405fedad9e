// Seeds, progress, previews and cancelling: what the front ends rely on around the samplers.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>

#include "sampler/sampler.h"
#include "tests/sampler/gaussian_model.h"
#include "common/error.h"

namespace lit {
namespace {

using test::gaussian_eps_model;
using test::GaussianData;

// Images first .. first + count - 1 of a request seeded `seed`, generated as one batch.
at::Tensor generate(const Sampler& sampler, const GaussianDiffusion& diffusion, const ModelFn& model, uint64_t seed,
                    int64_t first, int64_t count) {
  SeededNoise noise(seed, first, count);
  const at::Tensor x_T = noise.draw({count, 4, 8, 8});
  return sampler.sample(model, diffusion, x_T, noise);
}

TEST(SeededNoise, ImageIUsesItsOwnGeneratorSeededSeedPlusI) {
  SeededNoise all(42, 0, 5);
  const at::Tensor a = all.draw({5, 3, 4, 4});
  SeededNoise third(42, 2, 1);
  EXPECT_TRUE(at::equal(third.draw({1, 3, 4, 4})[0], a[2]));
  // Image i's first draw is randn((C, H, W)) from a CPU generator seeded seed + i, in float32.
  const at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(42 + 4);
  EXPECT_TRUE(at::equal(at::randn({3, 4, 4}, gen, at::TensorOptions().dtype(at::kFloat)), a[4]));
  EXPECT_EQ(a.scalar_type(), at::kFloat);
  EXPECT_TRUE(a.device().is_cpu());
  // Successive draws continue each image's stream.
  EXPECT_FALSE(at::equal(all.draw({5, 3, 4, 4}), a));
  EXPECT_THROW(all.draw({4, 3, 4, 4}), Error);
  EXPECT_THROW(SeededNoise(1, 0, 0), Error);
}

TEST(Seeds, SameImagesWhateverTheBatchSize) {
  // Eight images of one request, generated in batches of 8, 3 (3 + 3 + 2) and 1, with a stochastic sampler
  // so the per-step noise matters too.
  const GaussianData data;
  const GaussianDiffusion diffusion = GaussianDiffusion::create("25");
  const ModelFn model = gaussian_eps_model(data, [](int64_t t) { return std::sin(0.01 * t); });
  const DDPMSampler ddpm;
  const at::Tensor whole = generate(ddpm, diffusion, model, 1234, 0, 8);
  std::vector<at::Tensor> by3, by1;
  for (int64_t first = 0; first < 8; first += 3)
    by3.push_back(generate(ddpm, diffusion, model, 1234, first, std::min<int64_t>(3, 8 - first)));
  for (int64_t i = 0; i < 8; ++i) by1.push_back(generate(ddpm, diffusion, model, 1234, i, 1));
  EXPECT_TRUE(at::equal(at::cat(by3), whole));
  EXPECT_TRUE(at::equal(at::cat(by1), whole));
  // Another seed gives other images; image i of seed s is image i - 1 of seed s + 1.
  const at::Tensor shifted = generate(ddpm, diffusion, model, 1235, 0, 7);
  EXPECT_TRUE(at::equal(shifted, whole.narrow(0, 1, 7)));
  EXPECT_FALSE(at::equal(shifted[0], whole[0]));
}

TEST(Progress, CallbackSeesEveryStepWithTimingAndPreviewsOnlyWhenAsked) {
  const GaussianData data;
  const GaussianDiffusion diffusion = GaussianDiffusion::create("10");
  const ModelFn model = gaussian_eps_model(data, [](int64_t) { return 0.0; });
  for (bool preview : {false, true}) {
    for (const char* name : {"ddpm", "ddim", "dpm++2m"}) {
      SCOPED_TRACE(std::string(name) + (preview ? " with preview" : ""));
      std::vector<StepProgress> seen;
      SamplingControl control;
      control.want_preview = preview;
      control.on_step = [&](const StepProgress& p) { seen.push_back(p); };
      SeededNoise noise(7, 0, 2);
      const at::Tensor x_T = noise.draw({2, 4, 8, 8});
      const at::Tensor x0 = make_sampler(name)->sample(model, diffusion, x_T, noise, control);
      ASSERT_EQ(seen.size(), 10u);
      for (size_t k = 0; k < seen.size(); ++k) {
        EXPECT_EQ(seen[k].step, static_cast<int64_t>(k + 1));
        EXPECT_EQ(seen[k].total, 10);
        EXPECT_GE(seen[k].elapsed_s, k ? seen[k - 1].elapsed_s : 0.0);
        EXPECT_GE(seen[k].remaining_s, 0.0);
        EXPECT_EQ(seen[k].pred_x0.defined(), preview);
        if (preview) {
          EXPECT_EQ(seen[k].pred_x0.sizes(), x_T.sizes());
        }
      }
      EXPECT_EQ(seen.back().remaining_s, 0.0);
      // The last preview is the x_0 prediction at step 0, next to the final sample.
      if (preview) {
        EXPECT_LT((seen.back().pred_x0 - x0).abs().max().item<double>(), 0.05);
      }
    }
  }
}

TEST(Cancel, StopsWithinOneStepAndReturnsNothing) {
  const GaussianData data;
  const GaussianDiffusion diffusion = GaussianDiffusion::create("50");
  int calls = 0;
  const ModelFn inner = gaussian_eps_model(data, [](int64_t) { return 0.0; });
  const ModelFn model = [&](const at::Tensor& x, const at::Tensor& t) {
    ++calls;
    return inner(x, t);
  };
  for (const char* name : {"ddpm", "ddim", "dpm++2m"}) {
    SCOPED_TRACE(name);
    calls = 0;
    std::atomic<bool> cancel{false};
    SamplingControl control;
    control.cancel = &cancel;
    control.on_step = [&](const StepProgress& p) {
      if (p.step == 5) cancel = true;  // e.g. the GUI's button, pressed during step 5
    };
    SeededNoise noise(1, 0, 2);
    at::Tensor result;
    EXPECT_THROW(result = make_sampler(name)->sample(model, diffusion, noise.draw({2, 4, 8, 8}), noise, control),
                 Cancelled);
    EXPECT_EQ(calls, 5);  // no model call after the flag was set
    EXPECT_FALSE(result.defined());
  }
  // Set before starting: the model is never called.
  calls = 0;
  std::atomic<bool> cancel{true};
  SamplingControl control;
  control.cancel = &cancel;
  SeededNoise noise(1, 0, 1);
  EXPECT_THROW(DDIMSampler().sample(model, diffusion, noise.draw({1, 4, 8, 8}), noise, control), Cancelled);
  EXPECT_EQ(calls, 0);
}

TEST(Samplers, ByNameAndBadInputs) {
  EXPECT_EQ(make_sampler("DDPM")->name(), "ddpm");
  EXPECT_EQ(make_sampler("ddim", {0.5, false})->name(), "ddim");
  EXPECT_EQ(make_sampler("dpm-solver++")->name(), "dpm++2m");
  EXPECT_THROW(make_sampler("euler"), Error);
  EXPECT_THROW(DDIMSampler(-1.0), Error);

  const GaussianDiffusion diffusion = GaussianDiffusion::create("5");
  SeededNoise noise(0, 0, 1);
  const ModelFn eps_only = gaussian_eps_model(GaussianData{});  // C channels: learned range needs 2C
  EXPECT_THROW(DDPMSampler().sample(eps_only, diffusion, noise.draw({1, 4, 8, 8}), noise), Error);
  const ModelFn model = gaussian_eps_model(GaussianData{}, [](int64_t) { return 0.0; });
  EXPECT_THROW(DDPMSampler().sample(model, diffusion, at::randn({1, 4, 8, 8}).to(at::kHalf), noise), Error);
  EXPECT_THROW(DDPMSampler().sample(ModelFn(), diffusion, at::randn({1, 4, 8, 8}), noise), Error);
}

TEST(Samplers, ClippingKeepsPredictionsInRange) {
  // Data far outside [-1, 1]: with clipping every x_0 prediction, and so the DDIM/DPM results, stay inside.
  GaussianData data;
  data.mu = 3.0;
  const GaussianDiffusion diffusion = GaussianDiffusion::create("10");
  const ModelFn model = gaussian_eps_model(data, [](int64_t) { return 0.0; });
  for (const char* name : {"ddim", "dpm++2m"}) {
    SeededNoise noise(3, 0, 2);
    const at::Tensor x_T = noise.draw({2, 4, 8, 8});
    const at::Tensor clipped = make_sampler(name, {0.0, true})->sample(model, diffusion, x_T, noise);
    EXPECT_LE(clipped.abs().max().item<float>(), 1.0f + 1e-5f) << name;
    const at::Tensor free = make_sampler(name)->sample(model, diffusion, x_T, noise);
    EXPECT_GT(free.mean().item<float>(), 2.5f) << name;
  }
}

}  // namespace
}  // namespace lit
