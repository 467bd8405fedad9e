// A diffusion model with a known answer, for the sampler tests: data distributed N(mu, sigma^2) independently
// per pixel. Its exact noise predictor is
//   eps*(x_t, t) = E[eps | x_t] = sqrt(1 - abar)(x_t - sqrt(abar) mu) / (abar sigma^2 + 1 - abar),
// with abar the ORIGINAL process's cumulative alpha at the original timestep t (so a sampler that passed
// respaced indices would get the wrong answer). x_0 given x_t is Gaussian with variance
//   sigma^2 (1 - abar) / (abar sigma^2 + 1 - abar),
// which makes the exact reverse variance, and the probability-flow ODE maps x_T to
//   mu + sigma (x_T - sqrt(abar_T) mu) / sqrt(abar_T sigma^2 + 1 - abar_T).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <functional>
#include <map>
#include <vector>

#include "sampler/gaussian_diffusion.h"
#include "sampler/model_fn.h"

namespace lit::test {

struct GaussianData {
  double mu = 0.7;
  double sigma = 0.3;
  std::vector<double> alphas_cumprod = DiffusionSchedule::linear().alphas_cumprod;  // original process

  double eps_coef(double abar) const { return std::sqrt(1 - abar) / (abar * sigma * sigma + 1 - abar); }
  double x0_variance(double abar) const { return sigma * sigma * (1 - abar) / (abar * sigma * sigma + 1 - abar); }
  // The exact probability-flow ODE solution from x_T at the original process's last step to the data.
  at::Tensor ode_solution(const at::Tensor& x_T) const {
    const double abar = alphas_cumprod.back();
    return mu + sigma * (x_T - std::sqrt(abar) * mu) / std::sqrt(abar * sigma * sigma + 1 - abar);
  }
};

// The model callable: eps* alone (C channels), or eps* and a variance value v(t_original) (2C channels).
inline ModelFn gaussian_eps_model(const GaussianData& data, std::function<double(int64_t)> v_of_t = {}) {
  return [data, v_of_t](const at::Tensor& x, const at::Tensor& t) {
    const at::Tensor t_cpu = t.to(at::kCPU);
    std::vector<double> sqrt_abar, coef, v;
    for (int64_t b = 0; b < t_cpu.size(0); ++b) {
      const double abar = data.alphas_cumprod.at(t_cpu[b].item<int64_t>());
      sqrt_abar.push_back(std::sqrt(abar));
      coef.push_back(data.eps_coef(abar));
      if (v_of_t) v.push_back(v_of_t(t_cpu[b].item<int64_t>()));
    }
    auto column = [&](const std::vector<double>& values) {
      return at::tensor(values, at::kDouble).to(x.scalar_type()).view({-1, 1, 1, 1}).to(x.device());
    };
    const at::Tensor eps = column(coef) * (x - column(sqrt_abar) * data.mu);
    if (!v_of_t) return eps;
    return at::cat({eps, column(v).expand_as(eps)}, 1);
  };
}

// The learned-range value v that makes p_mean_variance's variance the exact reverse variance
// posterior_variance + coef1^2 Var(x_0 | x_t) at each step of `diffusion` (any v at step 0: no noise there).
inline std::function<double(int64_t)> exact_reverse_variance_values(const GaussianData& data,
                                                                    const GaussianDiffusion& diffusion) {
  const DiffusionSchedule& s = diffusion.schedule();
  std::map<int64_t, double> v_by_original_t;
  for (int64_t k = 0; k < s.size(); ++k) {
    double v = -1.0;
    if (k > 0) {
      const double c1 = s.posterior_mean_coef1[k];
      const double log_var = std::log(s.posterior_variance[k] + c1 * c1 * data.x0_variance(s.alphas_cumprod[k]));
      const double min_log = s.posterior_log_variance_clipped[k], max_log = std::log(s.betas[k]);
      v = 2 * (log_var - min_log) / (max_log - min_log) - 1;
    }
    v_by_original_t[s.timestep_map[k]] = v;
  }
  return [v_by_original_t](int64_t t) { return v_by_original_t.at(t); };
}

}  // namespace lit::test
