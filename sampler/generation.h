// Generation of one batch of a request, as `lit generate` and lit-studio both do it: a class-conditional
// network, a sampler over DiT's respaced process, classifier-free guidance, and per-image seeds.
// Image i of a request seeded `seed` is always the same, whatever batch it is sampled in: its initial and
// per-step noise come from its own generator seeded `seed + i` (sampler/noise.h).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

#include "sampler/gaussian_diffusion.h"
#include "sampler/guidance.h"
#include "sampler/model_fn.h"
#include "sampler/sampler.h"

namespace lit {

struct SamplingSettings {
  std::string sampler = "ddpm";  // "ddpm", "ddim", "dpm++2m"
  int64_t steps = 250;           // respaced steps (DiT's "250" FID protocol by default)
  double eta = 0.0;              // DDIM only
  Guidance guidance;             // scale 1 = unguided; null_class must be the model's num_classes
  bool learn_sigma = true;       // the model predicts the variance (else DiT's fixed-large variance)
  bool clip_denoised = false;    // clamp x_0 predictions to [-1, 1] (pixel-space models)
};

// Throws lit::Error for settings no sampler accepts (unknown sampler, steps outside 1..1000, negative eta or
// guidance scale).
void validate_sampling_settings(const SamplingSettings& settings);

struct SampleShape {
  int64_t channels = 4;
  int64_t height = 32;  // latent (or pixel) grid
  int64_t width = 32;
};

// Samples images first_index .. first_index + B - 1 of a request seeded `seed`, with labels (B,) int64 (the
// null class for unconditional images), on `device`, in float32. init_noise (B, C, H, W), when defined,
// replaces the seeded initial noise (the per-step noise still comes from the seeds). Returns the final
// latents (B, C, H, W) on `device`. Throws lit::Error, lit::Cancelled, or what the model throws.
at::Tensor sample_batch(const ClassConditionalFn& forward, const SampleShape& shape, const at::Tensor& labels,
                        uint64_t seed, int64_t first_index, const SamplingSettings& settings, at::Device device,
                        const SamplingControl& control = {}, const at::Tensor& init_noise = {});

// Images in [-1, 1] (B, C, H, W) to uint8 (B, H, W, C) on the CPU as DiT's sample_ddp.py converts them for
// FID: clamp(127.5 x + 128, 0, 255), truncated.
at::Tensor to_uint8_nhwc(const at::Tensor& images);

}  // namespace lit
