// DDIM (Song et al. 2021, eq. 12): x_{t-1} = sqrt(abar_prev) x0 + sqrt(1 - abar_prev - sigma^2) eps + sigma z,
// sigma = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev). As in DiT, eps is re-derived
// from the (possibly clipped) x_0 prediction so the two stay consistent.
#include <string>

#include "common/error.h"
#include "sampler/reverse_loop.h"
#include "sampler/sampler.h"

namespace lit {

DDIMSampler::DDIMSampler(double eta, bool clip_denoised) : eta_(eta), clip_denoised_(clip_denoised) {
  if (!(eta >= 0.0)) throw Error("DDIM: eta must be non-negative, got " + std::to_string(eta));
}

at::Tensor DDIMSampler::sample(const ModelFn& model, const GaussianDiffusion& diffusion, const at::Tensor& x_T,
                               NoiseSource& noise, const SamplingControl& control) const {
  const DiffusionSchedule& s = diffusion.schedule();
  return detail::run_reverse_process(
      model, diffusion, x_T, control,
      [&](const at::Tensor& x, int64_t i, const at::Tensor& t, const at::Tensor& output, at::Tensor& pred_x0) {
        pred_x0 = diffusion.predict_xstart(output, x, t, clip_denoised_);
        const at::Tensor eps = diffusion.predict_eps_from_xstart(x, t, pred_x0);
        const at::Tensor alpha_bar = diffusion.extract(s.alphas_cumprod, t, x);
        const at::Tensor alpha_bar_prev = diffusion.extract(s.alphas_cumprod_prev, t, x);
        const at::Tensor sigma =
            eta_ * at::sqrt((1 - alpha_bar_prev) / (1 - alpha_bar)) * at::sqrt(1 - alpha_bar / alpha_bar_prev);
        const at::Tensor mean = pred_x0 * at::sqrt(alpha_bar_prev) + at::sqrt(1 - alpha_bar_prev - sigma.pow(2)) * eps;
        if (i == 0 || eta_ == 0.0) return mean;
        return mean + sigma * detail::step_noise(noise, x);
      });
}

}  // namespace lit
