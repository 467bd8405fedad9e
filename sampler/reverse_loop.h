// The loop every sampler shares (internal to sampler/): from the last respaced step to step 0, check the
// cancel flag, call the model with the original timesteps, take one sampler-specific step, report progress.
#pragma once

#include <ATen/ATen.h>

#include <functional>

#include "sampler/sampler.h"

namespace lit::detail {

// One reverse step from respaced step i (t: (B,) filled with i) given the model output there: returns x at
// step i - 1, or the sample when i == 0, and sets pred_x0 to the step's x_0 prediction.
using ReverseStep = std::function<at::Tensor(const at::Tensor& x, int64_t i, const at::Tensor& t,
                                             const at::Tensor& model_output, at::Tensor& pred_x0)>;

at::Tensor run_reverse_process(const ModelFn& model, const GaussianDiffusion& diffusion, const at::Tensor& x_T,
                               const SamplingControl& control, const ReverseStep& step);

// The next draw of `noise` in like's shape, dtype and device.
at::Tensor step_noise(NoiseSource& noise, const at::Tensor& like);

}  // namespace lit::detail
