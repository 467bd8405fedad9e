#include "sampler/dpm_solver_vp.h"

#include <ATen/core/grad_mode.h>

#include <chrono>

#include "common/error.h"

namespace lit {

// ---------------------------------------------------------------------------------------------------------
// Schedule
// ---------------------------------------------------------------------------------------------------------
NoiseScheduleVP NoiseScheduleVP::discrete(const at::Tensor& betas) {
  if (!betas.defined() || betas.dim() != 1 || betas.size(0) < 2 || !at::isFloatingType(betas.scalar_type()))
    throw Error("NoiseScheduleVP: betas must be a 1-D floating tensor of at least 2 values");
  NoiseScheduleVP s;
  const at::Tensor log_alphas = 0.5 * at::log(1 - betas.cpu()).cumsum(0);
  const int64_t n = betas.size(0);
  s.t_array_ = at::linspace(0., 1., n + 1, at::TensorOptions().dtype(at::kFloat)).narrow(0, 1, n).contiguous();
  s.log_alpha_array_ = log_alphas.to(at::kFloat).contiguous();
  return s;
}

NoiseScheduleVP NoiseScheduleVP::linear(int64_t n, double beta_start, double beta_end) {
  return discrete(at::linspace(beta_start, beta_end, n, at::TensorOptions().dtype(at::kDouble)));
}

at::Tensor interpolate_piecewise(const at::Tensor& x, const at::Tensor& xp, const at::Tensor& yp) {
  const int64_t K = xp.size(0);
  const at::Tensor flat = x.reshape({-1, 1});
  const at::Tensor xp_d = xp.to(x.device()), yp_d = yp.to(x.device());
  // Segment: below the first knot the first one, above the last the last one, else the one holding x.
  const at::Tensor j = (xp_d.unsqueeze(0) < flat).sum(1);
  const at::Tensor lo = at::clamp(j - 1, 0, K - 2);
  const at::Tensor start_x = xp_d.index_select(0, lo), end_x = xp_d.index_select(0, lo + 1);
  const at::Tensor start_y = yp_d.index_select(0, lo), end_y = yp_d.index_select(0, lo + 1);
  const at::Tensor xs = flat.squeeze(1);
  return (start_y + (xs - start_x) * (end_y - start_y) / (end_x - start_x)).reshape(x.sizes());
}

at::Tensor NoiseScheduleVP::marginal_log_mean_coeff(const at::Tensor& t) const {
  return interpolate_piecewise(t, t_array_, log_alpha_array_);
}

at::Tensor NoiseScheduleVP::marginal_alpha(const at::Tensor& t) const {
  return at::exp(marginal_log_mean_coeff(t));
}

at::Tensor NoiseScheduleVP::marginal_std(const at::Tensor& t) const {
  return at::sqrt(1. - at::exp(2. * marginal_log_mean_coeff(t)));
}

at::Tensor NoiseScheduleVP::marginal_lambda(const at::Tensor& t) const {
  const at::Tensor log_mean_coeff = marginal_log_mean_coeff(t);
  const at::Tensor log_std = 0.5 * at::log(1. - at::exp(2. * log_mean_coeff));
  return log_mean_coeff - log_std;
}

at::Tensor NoiseScheduleVP::inverse_lambda(const at::Tensor& lambda) const {
  const at::Tensor log_alpha = -0.5 * at::logaddexp(at::zeros({1}, lambda.options()), -2. * lambda);
  return interpolate_piecewise(log_alpha, log_alpha_array_.flip({0}), t_array_.flip({0}));
}

// ---------------------------------------------------------------------------------------------------------
// Solver
// ---------------------------------------------------------------------------------------------------------
at::Tensor dpm_solver_time_steps(const NoiseScheduleVP& s, const DPMSolverOptions& o) {
  if (o.steps < 1) throw Error("DPM-Solver: steps must be at least 1, got " + std::to_string(o.steps));
  const double t_T = o.t_start > 0 ? o.t_start : s.T();
  const double t_0 = o.t_end > 0 ? o.t_end : 1.0 / static_cast<double>(s.total_N());
  if (!(t_T > t_0)) throw Error("DPM-Solver: t_start must be after t_end");
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  if (o.skip_type == "time_uniform") return at::linspace(t_T, t_0, o.steps + 1, f32);
  if (o.skip_type == "logSNR") {
    const double lambda_T = s.marginal_lambda(at::full({1}, t_T, f32)).item<double>();
    const double lambda_0 = s.marginal_lambda(at::full({1}, t_0, f32)).item<double>();
    return s.inverse_lambda(at::linspace(lambda_T, lambda_0, o.steps + 1, f32));
  }
  if (o.skip_type == "time_quadratic") return at::linspace(std::sqrt(t_T), std::sqrt(t_0), o.steps + 1, f32).pow(2);
  throw Error("DPM-Solver: unknown skip_type '" + o.skip_type + "' (time_uniform, logSNR, time_quadratic)");
}

at::Tensor dpm_solver_sample(const NoiseFn& model, const NoiseScheduleVP& ns, const at::Tensor& x_start,
                             const DPMSolverOptions& o, const SamplingControl& control,
                             std::vector<at::Tensor>* intermediates) {
  if (!model) throw Error("DPM-Solver: no model");
  if (o.order < 1 || o.order > 2) throw Error("DPM-Solver: order must be 1 or 2, got " + std::to_string(o.order));
  if (o.steps < o.order) throw Error("DPM-Solver: multistep needs steps >= order");
  if (!x_start.defined() || x_start.dim() < 2 || x_start.scalar_type() != at::kFloat)
    throw Error("DPM-Solver: the initial noise must be a float32 (B, C, ...) tensor");
  at::NoGradGuard no_grad;
  const auto start_clock = std::chrono::steady_clock::now();
  const at::Tensor timesteps = dpm_solver_time_steps(ns, o).to(x_start.device());
  const double n = static_cast<double>(ns.total_N());
  const int64_t batch = x_start.size(0);

  at::Tensor last_pred;
  // x0 = (x - sigma eps) / alpha at time step k (a (1,) tensor), eps from the model at (t - 1/N) * 1000.
  auto data_pred = [&](const at::Tensor& x, const at::Tensor& t) {
    if (control.cancel && control.cancel->load()) throw Cancelled();
    const at::Tensor t_input = (t.expand({batch}) - 1. / n) * 1000.;
    const at::Tensor noise = model(x, t_input);
    if (!noise.defined() || noise.sizes() != x.sizes())
      throw Error("DPM-Solver: the model must return eps of the input's shape");
    const at::Tensor alpha_t = ns.marginal_alpha(t), sigma_t = ns.marginal_std(t);
    last_pred = (x - sigma_t * noise.to(x.scalar_type())) / alpha_t;
    return last_pred;
  };
  auto first_update = [&](const at::Tensor& x, const at::Tensor& s, const at::Tensor& t, const at::Tensor& model_s) {
    const at::Tensor h = ns.marginal_lambda(t) - ns.marginal_lambda(s);
    const at::Tensor sigma_s = ns.marginal_std(s), sigma_t = ns.marginal_std(t);
    const at::Tensor alpha_t = at::exp(ns.marginal_log_mean_coeff(t));
    const at::Tensor phi_1 = at::expm1(-h);
    return sigma_t / sigma_s * x - alpha_t * phi_1 * model_s;
  };
  auto second_update = [&](const at::Tensor& x, const std::vector<at::Tensor>& models,
                           const std::vector<at::Tensor>& times, const at::Tensor& t) {
    const at::Tensor &model_prev_1 = models[models.size() - 2], &model_prev_0 = models.back();
    const at::Tensor &t_prev_1 = times[times.size() - 2], &t_prev_0 = times.back();
    const at::Tensor lambda_prev_1 = ns.marginal_lambda(t_prev_1), lambda_prev_0 = ns.marginal_lambda(t_prev_0);
    const at::Tensor lambda_t = ns.marginal_lambda(t);
    const at::Tensor sigma_prev_0 = ns.marginal_std(t_prev_0), sigma_t = ns.marginal_std(t);
    const at::Tensor alpha_t = at::exp(ns.marginal_log_mean_coeff(t));
    const at::Tensor h_0 = lambda_prev_0 - lambda_prev_1, h = lambda_t - lambda_prev_0;
    const at::Tensor r0 = h_0 / h;
    const at::Tensor D1_0 = (1. / r0) * (model_prev_0 - model_prev_1);
    const at::Tensor phi_1 = at::expm1(-h);
    return (sigma_t / sigma_prev_0) * x - (alpha_t * phi_1) * model_prev_0 - 0.5 * (alpha_t * phi_1) * D1_0;
  };
  auto report = [&](int64_t step) {
    if (!control.on_step) return;
    StepProgress p;
    p.step = step;
    p.total = o.steps;
    p.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_clock).count();
    p.remaining_s = p.elapsed_s / static_cast<double>(step) * static_cast<double>(o.steps - step);
    if (control.want_preview) p.pred_x0 = last_pred;
    control.on_step(p);
  };

  at::Tensor x = x_start;
  auto time = [&](int64_t k) { return timesteps.narrow(0, k, 1); };  // (1,)
  std::vector<at::Tensor> t_prev = {time(0)};
  std::vector<at::Tensor> model_prev = {data_pred(x, time(0))};
  if (intermediates) intermediates->push_back(x);
  // The first `order` - 1 steps by lower-order multistep updates.
  for (int64_t step = 1; step < o.order; ++step) {
    x = first_update(x, t_prev.back(), time(step), model_prev.back());
    if (intermediates) intermediates->push_back(x);
    t_prev.push_back(time(step));
    model_prev.push_back(data_pred(x, time(step)));
    report(step);
  }
  for (int64_t step = o.order; step <= o.steps; ++step) {
    const int64_t step_order = o.lower_order_final ? std::min<int64_t>(o.order, o.steps + 1 - step) : o.order;
    x = step_order == 1 ? first_update(x, t_prev.back(), time(step), model_prev.back())
                        : second_update(x, model_prev, t_prev, time(step));
    if (intermediates) intermediates->push_back(x);
    for (size_t i = 0; i + 1 < t_prev.size(); ++i) {
      t_prev[i] = t_prev[i + 1];
      model_prev[i] = model_prev[i + 1];
    }
    t_prev.back() = time(step);
    if (step < o.steps) model_prev.back() = data_pred(x, time(step));  // none at the final time
    report(step);
  }
  return x;
}

}  // namespace lit
