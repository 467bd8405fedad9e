// The noise schedule of DiT's Gaussian diffusion, in float64 as the reference keeps it: linear betas
// 1e-4..0.02 over 1000 steps, optionally respaced to fewer steps with DiT's `space_timesteps` rule.
//
// A respaced process keeps a subset of the original timesteps and recomputes its betas so that its
// cumulative alphas are exactly the original ones at the kept steps. The model was trained on the original
// timesteps, so respaced step i calls it with timestep_map[i].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lit {

// DiT's "linear" schedule for `num_steps` steps: betas from 1e-4 to 0.02 (scaled by 1000 / num_steps so
// other step counts keep the same overall noise), evenly spaced as numpy.linspace computes them.
std::vector<double> linear_beta_schedule(int64_t num_steps = 1000);

// DiT's space_timesteps: which of `num_timesteps` original steps a respacing keeps, sorted ascending.
// `section_counts` is "250" (one section), "10,15,20" (the original steps split into equal sections, each
// strided to its count) or "ddim50" (a fixed integer stride, as in the DDIM paper). Throws lit::Error when
// the respacing cannot be made (more steps than a section holds, no integer stride, malformed text).
std::vector<int64_t> space_timesteps(int64_t num_timesteps, const std::string& section_counts);

// Every per-step array of a (possibly respaced) process, indexed by the respaced step 0..size()-1.
struct DiffusionSchedule {
  std::vector<int64_t> timestep_map;  // the original timestep each step stands for
  int64_t original_num_steps = 0;

  std::vector<double> betas;
  std::vector<double> alphas_cumprod;
  std::vector<double> alphas_cumprod_prev;  // 1 before the first step
  std::vector<double> alphas_cumprod_next;  // 0 after the last step
  std::vector<double> sqrt_alphas_cumprod;
  std::vector<double> sqrt_one_minus_alphas_cumprod;
  std::vector<double> log_one_minus_alphas_cumprod;
  std::vector<double> sqrt_recip_alphas_cumprod;
  std::vector<double> sqrt_recipm1_alphas_cumprod;
  // The posterior q(x_{t-1} | x_t, x_0): mean = coef1 * x_0 + coef2 * x_t.
  std::vector<double> posterior_variance;
  // log of the posterior variance with step 0 (where it is 0) replaced by step 1's value.
  std::vector<double> posterior_log_variance_clipped;
  std::vector<double> posterior_mean_coef1;
  std::vector<double> posterior_mean_coef2;

  // The process with these betas (each in (0, 1]); `timestep_map` defaults to 0..N-1. Throws lit::Error.
  static DiffusionSchedule from_betas(std::vector<double> betas, std::vector<int64_t> timestep_map = {});
  // DiT's create_diffusion schedule: linear betas over `num_steps`, respaced by `respacing` ("" or the
  // number of steps itself means none; see space_timesteps for the forms).
  static DiffusionSchedule linear(const std::string& respacing = "", int64_t num_steps = 1000);

  // The process that keeps only `use_timesteps` (indices of this process, any order, no duplicates).
  DiffusionSchedule respaced(const std::vector<int64_t>& use_timesteps) const;

  int64_t size() const { return static_cast<int64_t>(betas.size()); }
};

}  // namespace lit
