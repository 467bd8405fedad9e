// DPM-Solver++(2M) (Lu et al., "DPM-Solver++", 2022, Algorithm 2) on the discrete respaced schedule; see
// sampler.h for the update and the first-order final steps. The coefficients are computed in float64.
#include <cmath>

#include "sampler/reverse_loop.h"
#include "sampler/sampler.h"

namespace lit {

at::Tensor DPMSolverPP2MSampler::sample(const ModelFn& model, const GaussianDiffusion& diffusion, const at::Tensor& x_T,
                                        NoiseSource& /*noise: deterministic*/, const SamplingControl& control) const {
  const DiffusionSchedule& s = diffusion.schedule();
  auto lambda = [](double alpha_bar) { return 0.5 * std::log(alpha_bar / (1.0 - alpha_bar)); };
  at::Tensor prev_x0;  // the x_0 prediction of the previous step
  double prev_h = 0.0;
  return detail::run_reverse_process(
      model, diffusion, x_T, control,
      [&](const at::Tensor& x, int64_t i, const at::Tensor& t, const at::Tensor& output, at::Tensor& pred_x0) {
        pred_x0 = diffusion.predict_xstart(output, x, t, clip_denoised_);
        if (i == 0) return pred_x0;  // to the clean end: alpha = 1, sigma = 0

        const double abar_s = s.alphas_cumprod[i], abar_t = s.alphas_cumprod_prev[i];
        const double sigma_s = std::sqrt(1.0 - abar_s), sigma_t = std::sqrt(1.0 - abar_t);
        const double alpha_t = std::sqrt(abar_t);
        const double h = lambda(abar_t) - lambda(abar_s);
        const double data_coef = -alpha_t * std::expm1(-h);

        at::Tensor d = pred_x0;
        if (prev_x0.defined() && i > 1) {
          const double r = prev_h / h;
          d = (1.0 + 0.5 / r) * pred_x0 - (0.5 / r) * prev_x0;
        }
        prev_x0 = pred_x0;
        prev_h = h;
        return (sigma_t / sigma_s) * x + data_coef * d;
      });
}

}  // namespace lit
