#include "sampler/generation.h"

#include <ATen/core/grad_mode.h>

#include <memory>

#include "common/error.h"
#include "common/format.h"
#include "sampler/noise.h"

namespace lit {

void validate_sampling_settings(const SamplingSettings& s) {
  make_sampler(s.sampler);  // throws naming the choices
  if (s.steps < 1 || s.steps > 1000)
    throw Error("steps must be between 1 and 1000 (the process has 1000 timesteps), got " + std::to_string(s.steps));
  if (s.eta < 0) throw Error("eta must be >= 0, got " + std::to_string(s.eta));
  if (!(s.guidance.scale >= 0)) throw Error("guidance scale must be >= 0, got " + std::to_string(s.guidance.scale));
}

at::Tensor sample_batch(const ClassConditionalFn& forward, const SampleShape& shape, const at::Tensor& labels,
                        uint64_t seed, int64_t first_index, const SamplingSettings& settings, at::Device device,
                        const SamplingControl& control, const at::Tensor& init_noise) {
  validate_sampling_settings(settings);
  if (labels.dim() != 1 || labels.size(0) < 1) throw Error("sample_batch: labels must be a non-empty (B,) tensor");
  const int64_t batch = labels.size(0);
  const std::vector<int64_t> full_shape = {batch, shape.channels, shape.height, shape.width};
  if (init_noise.defined() && init_noise.sizes() != at::IntArrayRef(full_shape))
    throw Error("initial noise has shape " + shape_string(init_noise.sizes()) + ", the model samples " +
                c10::str(at::IntArrayRef(full_shape)));

  const at::NoGradGuard no_grad;
  const GaussianDiffusion diffusion = GaussianDiffusion::create(
      std::to_string(settings.steps), settings.learn_sigma ? VarianceType::LearnedRange : VarianceType::FixedLarge);
  SamplerOptions options;
  options.eta = settings.eta;
  options.clip_denoised = settings.clip_denoised;
  const std::unique_ptr<Sampler> sampler = make_sampler(settings.sampler, options);

  SeededNoise noise(seed, first_index, batch);
  // The initial noise is the first draw of every image's generator, also when it is replaced, so that the
  // per-step noise that follows is the same either way.
  at::Tensor x_T = noise.draw(full_shape);
  if (init_noise.defined()) x_T = init_noise.to(at::kCPU, at::kFloat);
  x_T = x_T.to(device);

  const ModelFn model = classifier_free_guidance(forward, labels.to(device, at::kLong), settings.guidance);
  return sampler->sample(model, diffusion, x_T, noise, control);
}

at::Tensor to_uint8_nhwc(const at::Tensor& images) {
  return at::clamp(images.detach().to(at::kCPU, at::kFloat) * 127.5 + 128.0, 0, 255)
      .to(at::kByte)
      .permute({0, 2, 3, 1})
      .contiguous();
}

}  // namespace lit
