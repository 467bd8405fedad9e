// DPM-Solver on continuous time as PixArt's official diffusion/model/dpm_solver.py runs it (Lu et al.'s
// DPM-Solver v3 code, PixArt's copy), for text-to-image models trained on a discrete schedule:
//
//   NoiseScheduleVP('discrete', betas): log alpha_n = 1/2 cumsum(log(1 - beta)), t_n = (n + 1) / N (float32
//   tables), log alpha(t) piecewise linear in t (extrapolated at the ends); sigma = sqrt(1 - alpha^2),
//   lambda = log alpha - log sigma.
//   The network is called at model time (t - 1/N) * 1000 (float, not rounded), with the batch's t.
//   DPM-Solver++ (data prediction x0 = (x - sigma eps) / alpha), multistep: step 1 first order, then
//   `order`; with lower_order_final the order of step k is min(order, steps + 1 - k) (the last step is first
//   order at order 2); no model call at the final time: `steps` evaluations in all.
//   Time steps: "time_uniform" linspace(t_start, t_end, steps + 1) (t_start 1, t_end 1/N by default),
//   "logSNR" uniform in lambda, "time_quadratic" as the official code.
//
// The solver knows no model: it calls a NoiseFn. Text-to-image guidance (PixArt's model_wrapper) is in
// sampler/text_guidance.h. Arithmetic is float32, as the reference's (its tables and coefficients are float32).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <string>
#include <vector>

#include "sampler/sampler.h"  // SamplingControl, Cancelled

namespace lit {

// (x (B, C, H, W), t (B,) float32 MODEL time (t_continuous - 1/N) * 1000) -> eps (B, C, H, W).
using NoiseFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t_model)>;

class NoiseScheduleVP {
 public:
  // The discrete schedule of `betas` (any floating dtype; the log-alpha table is computed in its dtype, then
  // stored float32, as the reference with float64 betas).
  static NoiseScheduleVP discrete(const at::Tensor& betas);
  // betas = linspace(start, end, n) in float64: PixArt's 'linear' schedule (1e-4, 0.02, 1000).
  static NoiseScheduleVP linear(int64_t n = 1000, double beta_start = 1e-4, double beta_end = 0.02);

  int64_t total_N() const { return t_array_.size(0); }
  double T() const { return 1.0; }
  const at::Tensor& t_array() const { return t_array_; }                  // (N,) float32
  const at::Tensor& log_alpha_array() const { return log_alpha_array_; }  // (N,) float32

  // Elementwise over float32 t.
  at::Tensor marginal_log_mean_coeff(const at::Tensor& t) const;
  at::Tensor marginal_alpha(const at::Tensor& t) const;
  at::Tensor marginal_std(const at::Tensor& t) const;
  at::Tensor marginal_lambda(const at::Tensor& t) const;
  at::Tensor inverse_lambda(const at::Tensor& lambda) const;

 private:
  at::Tensor t_array_, log_alpha_array_;
};

// The reference's interpolate_fn for one curve: piecewise-linear y(x) through (xp, yp) (xp increasing),
// extended linearly beyond both ends. x any shape, float32.
at::Tensor interpolate_piecewise(const at::Tensor& x, const at::Tensor& xp, const at::Tensor& yp);

struct DPMSolverOptions {
  int64_t steps = 20;
  int64_t order = 2;                       // 1 or 2
  std::string skip_type = "time_uniform";  // "time_uniform", "logSNR", "time_quadratic"
  double t_start = 0;                      // 0: T = 1
  double t_end = 0;                        // 0: 1 / N
  bool lower_order_final = true;
};

// The time steps, (steps + 1,) float32 from t_start down to t_end.
at::Tensor dpm_solver_time_steps(const NoiseScheduleVP& schedule, const DPMSolverOptions& options);

// Runs DPM-Solver++ multistep from x (noise at t_start; float32) and returns the sample at t_end.
// intermediates, when given, receives x at the start and after every step (steps + 1 tensors).
// control.on_step is called after each step (pred_x0 = the step's data prediction when want_preview);
// control.cancel is read before every model call. Throws lit::Error for bad options or shapes, lit::Cancelled.
at::Tensor dpm_solver_sample(const NoiseFn& model, const NoiseScheduleVP& schedule, const at::Tensor& x,
                             const DPMSolverOptions& options, const SamplingControl& control = {},
                             std::vector<at::Tensor>* intermediates = nullptr);

}  // namespace lit
