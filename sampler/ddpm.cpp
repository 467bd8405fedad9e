// DDPM ancestral sampling: x_{t-1} = mean + exp(log_variance / 2) * noise with the model's mean and variance;
// no noise at the last step.
#include "sampler/reverse_loop.h"
#include "sampler/sampler.h"

namespace lit {

at::Tensor DDPMSampler::sample(const ModelFn& model, const GaussianDiffusion& diffusion, const at::Tensor& x_T,
                               NoiseSource& noise, const SamplingControl& control) const {
  return detail::run_reverse_process(
      model, diffusion, x_T, control,
      [&](const at::Tensor& x, int64_t i, const at::Tensor& t, const at::Tensor& output, at::Tensor& pred_x0) {
        const MeanVariance p = diffusion.p_mean_variance(output, x, t, clip_denoised_);
        pred_x0 = p.pred_xstart;
        if (i == 0) return p.mean;
        return p.mean + at::exp(0.5 * p.log_variance) * detail::step_noise(noise, x);
      });
}

}  // namespace lit
