#include "sampler/gaussian_diffusion.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "common/error.h"
#include "common/format.h"
#include "sampler/likelihood.h"

namespace lit {
namespace {}  // namespace

const char* variance_type_name(VarianceType type) {
  switch (type) {
    case VarianceType::LearnedRange:
      return "learned-range";
    case VarianceType::FixedSmall:
      return "fixed-small";
    case VarianceType::FixedLarge:
      return "fixed-large";
  }
  return "?";
}

at::Tensor mean_flat(const at::Tensor& x) {
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < x.dim(); ++d) dims.push_back(d);
  return dims.empty() ? x : x.mean(dims);
}

GaussianDiffusion::GaussianDiffusion(DiffusionSchedule schedule, VarianceType variance)
    : schedule_(std::move(schedule)), variance_(variance) {
  const int64_t n = schedule_.size();
  if (n == 0) throw Error("Gaussian diffusion: empty schedule");
  for (int64_t i = 0; i < n; ++i) {
    log_betas_.push_back(std::log(schedule_.betas[i]));
    // Fixed-large uses beta_t, but the initial (log-)variance of the posterior at step 1 for a better
    // decoder log-likelihood, as the reference does.
    const double v = i == 0 ? (n > 1 ? schedule_.posterior_variance[1] : schedule_.betas[0]) : schedule_.betas[i];
    fixed_large_var_.push_back(v);
    fixed_large_log_var_.push_back(std::log(v));
  }
}

GaussianDiffusion GaussianDiffusion::create(const std::string& respacing, VarianceType variance,
                                            int64_t diffusion_steps) {
  return GaussianDiffusion(DiffusionSchedule::linear(respacing, diffusion_steps), variance);
}

void GaussianDiffusion::check_timesteps(const at::Tensor& t, const at::Tensor& x, const char* what) const {
  if (!t.defined() || t.dim() != 1 || t.scalar_type() != at::kLong)
    throw Error(std::string(what) + ": timesteps must be a 1-D int64 tensor");
  if (x.defined() && (x.dim() < 1 || x.size(0) != t.size(0)))
    throw Error(std::string(what) + ": " + std::to_string(t.size(0)) + " timesteps for a batch of shape " +
                shape_string(x.sizes()));
}

DeviceTableCache& DeviceTableCache::operator=(const DeviceTableCache&) {
  const std::lock_guard<std::mutex> lock(mutex_);
  entries_.clear();
  return *this;
}

at::Tensor DeviceTableCache::get(const void* table, const std::function<at::Tensor()>& make_on_cpu, at::Device device,
                                 at::ScalarType dtype) {
  const std::lock_guard<std::mutex> lock(mutex_);
  for (const Entry& e : entries_)
    if (e.table == table && e.device == device && e.dtype == dtype) return e.values;
  entries_.push_back({table, device, dtype, make_on_cpu().to(dtype).to(device)});
  return entries_.back().values;
}

bool GaussianDiffusion::owns(const void* table) const {
  const DiffusionSchedule& s = schedule_;
  const void* const tables[] = {&s.timestep_map,
                                &s.betas,
                                &s.alphas_cumprod,
                                &s.alphas_cumprod_prev,
                                &s.alphas_cumprod_next,
                                &s.sqrt_alphas_cumprod,
                                &s.sqrt_one_minus_alphas_cumprod,
                                &s.log_one_minus_alphas_cumprod,
                                &s.sqrt_recip_alphas_cumprod,
                                &s.sqrt_recipm1_alphas_cumprod,
                                &s.posterior_variance,
                                &s.posterior_log_variance_clipped,
                                &s.posterior_mean_coef1,
                                &s.posterior_mean_coef2,
                                &log_betas_,
                                &fixed_large_var_,
                                &fixed_large_log_var_};
  return std::find(std::begin(tables), std::end(tables), table) != std::end(tables);
}

at::Tensor GaussianDiffusion::extract(const std::vector<double>& arr, const at::Tensor& t,
                                      const at::Tensor& like) const {
  check_timesteps(t, like, "diffusion");
  const at::ScalarType dtype = like.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  std::vector<int64_t> shape(static_cast<size_t>(std::max<int64_t>(like.dim(), 1)), 1);
  shape[0] = t.size(0);
  if (t.is_cuda() && owns(&arr)) {
    // The same float64 -> dtype rounding as below, done once for the whole table.
    const at::Tensor table = device_tables_.get(
        &arr, [&] { return at::tensor(arr, at::kDouble); }, t.device(), dtype);
    return table.index_select(0, t).reshape(shape).to(like.device());
  }
  const at::Tensor t_cpu = t.to(at::kCPU).contiguous();
  const int64_t* idx = t_cpu.data_ptr<int64_t>();
  std::vector<double> values(static_cast<size_t>(t_cpu.numel()));
  for (size_t b = 0; b < values.size(); ++b) {
    if (idx[b] < 0 || idx[b] >= static_cast<int64_t>(arr.size()))
      throw Error("diffusion: timestep " + std::to_string(idx[b]) + " is outside the process's 0.." +
                  std::to_string(arr.size() - 1));
    values[b] = arr[idx[b]];
  }
  return at::tensor(values, at::kDouble).to(dtype).reshape(shape).to(like.device());
}

at::Tensor GaussianDiffusion::original_timesteps(const at::Tensor& t) const {
  check_timesteps(t, at::Tensor(), "diffusion");
  if (t.is_cuda()) {
    const std::vector<int64_t>& map = schedule_.timestep_map;
    const at::Tensor table = device_tables_.get(
        &map, [&] { return at::tensor(map, at::kLong); }, t.device(), at::kLong);
    return table.index_select(0, t);
  }
  const at::Tensor t_cpu = t.to(at::kCPU).contiguous();
  const int64_t* idx = t_cpu.data_ptr<int64_t>();
  std::vector<int64_t> out(static_cast<size_t>(t_cpu.numel()));
  for (size_t b = 0; b < out.size(); ++b) {
    if (idx[b] < 0 || idx[b] >= num_timesteps())
      throw Error("diffusion: timestep " + std::to_string(idx[b]) + " is outside the process's 0.." +
                  std::to_string(num_timesteps() - 1));
    out[b] = schedule_.timestep_map[idx[b]];
  }
  return at::tensor(out, at::kLong).to(t.device());
}

at::Tensor GaussianDiffusion::q_sample(const at::Tensor& x_start, const at::Tensor& t, const at::Tensor& noise) const {
  if (noise.sizes() != x_start.sizes())
    throw Error("q_sample: noise of shape " + shape_string(noise.sizes()) + " for data of shape " +
                shape_string(x_start.sizes()));
  return extract(schedule_.sqrt_alphas_cumprod, t, x_start) * x_start +
         extract(schedule_.sqrt_one_minus_alphas_cumprod, t, x_start) * noise;
}

PosteriorMeanVariance GaussianDiffusion::q_posterior_mean_variance(const at::Tensor& x_start, const at::Tensor& x_t,
                                                                   const at::Tensor& t) const {
  if (x_start.sizes() != x_t.sizes())
    throw Error("posterior: x_start of shape " + shape_string(x_start.sizes()) + " for x_t of shape " +
                shape_string(x_t.sizes()));
  PosteriorMeanVariance out;
  out.mean =
      extract(schedule_.posterior_mean_coef1, t, x_t) * x_start + extract(schedule_.posterior_mean_coef2, t, x_t) * x_t;
  out.variance = extract(schedule_.posterior_variance, t, x_t).expand_as(x_t);
  out.log_variance_clipped = extract(schedule_.posterior_log_variance_clipped, t, x_t).expand_as(x_t);
  return out;
}

std::pair<at::Tensor, at::Tensor> GaussianDiffusion::split_output(const at::Tensor& model_output, const at::Tensor& x,
                                                                  const char* what) const {
  if (x.dim() < 2) throw Error(std::string(what) + ": x_t must be (B, C, ...), got " + shape_string(x.sizes()));
  const int64_t channels = x.size(1);
  const bool learned = variance_ == VarianceType::LearnedRange;
  bool ok = model_output.dim() == x.dim() && model_output.size(0) == x.size(0);
  for (int64_t d = 2; ok && d < x.dim(); ++d) ok = model_output.size(d) == x.size(d);
  const int64_t c_out = ok ? model_output.size(1) : -1;
  ok = ok && (c_out == 2 * channels || (!learned && c_out == channels));
  if (!ok)
    throw Error(std::string(what) + ": model output of shape " + shape_string(model_output.sizes()) +
                " for x_t of shape " + shape_string(x.sizes()) + " (" + variance_type_name(variance_) +
                " variance needs " + (learned ? "2C" : "C or 2C") + " channels)");
  const at::Tensor out = model_output.to(x.scalar_type());
  const at::Tensor eps = out.narrow(1, 0, channels);
  return {eps, c_out == 2 * channels ? out.narrow(1, channels, channels) : at::Tensor()};
}

at::Tensor GaussianDiffusion::predict_xstart_from_eps(const at::Tensor& x_t, const at::Tensor& t,
                                                      const at::Tensor& eps) const {
  return extract(schedule_.sqrt_recip_alphas_cumprod, t, x_t) * x_t -
         extract(schedule_.sqrt_recipm1_alphas_cumprod, t, x_t) * eps;
}

at::Tensor GaussianDiffusion::predict_eps_from_xstart(const at::Tensor& x_t, const at::Tensor& t,
                                                      const at::Tensor& x_start) const {
  return (extract(schedule_.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x_start) /
         extract(schedule_.sqrt_recipm1_alphas_cumprod, t, x_t);
}

at::Tensor GaussianDiffusion::predict_xstart(const at::Tensor& model_output, const at::Tensor& x_t, const at::Tensor& t,
                                             bool clip_denoised) const {
  const at::Tensor eps = split_output(model_output, x_t, "predict_xstart").first;
  const at::Tensor x0 = predict_xstart_from_eps(x_t, t, eps);
  return clip_denoised ? x0.clamp(-1.0, 1.0) : x0;
}

MeanVariance GaussianDiffusion::p_mean_variance(const at::Tensor& model_output, const at::Tensor& x_t,
                                                const at::Tensor& t, bool clip_denoised) const {
  const auto [eps, var_values] = split_output(model_output, x_t, "p_mean_variance");
  MeanVariance out;
  if (variance_ == VarianceType::LearnedRange) {
    // The variance values in [-1, 1] span [posterior variance, beta_t] in log space.
    const at::Tensor min_log = extract(schedule_.posterior_log_variance_clipped, t, x_t);
    const at::Tensor max_log = extract(log_betas_, t, x_t);
    const at::Tensor frac = (var_values + 1) / 2;
    out.log_variance = frac * max_log + (1 - frac) * min_log;
    out.variance = at::exp(out.log_variance);
  } else {
    const bool small = variance_ == VarianceType::FixedSmall;
    out.variance = extract(small ? schedule_.posterior_variance : fixed_large_var_, t, x_t).expand_as(x_t);
    out.log_variance =
        extract(small ? schedule_.posterior_log_variance_clipped : fixed_large_log_var_, t, x_t).expand_as(x_t);
  }
  out.pred_xstart = predict_xstart_from_eps(x_t, t, eps);
  if (clip_denoised) out.pred_xstart = out.pred_xstart.clamp(-1.0, 1.0);
  out.mean = q_posterior_mean_variance(out.pred_xstart, x_t, t).mean;
  return out;
}

at::Tensor GaussianDiffusion::vb_terms_bpd(const at::Tensor& model_output, const at::Tensor& x_start,
                                           const at::Tensor& x_t, const at::Tensor& t) const {
  const PosteriorMeanVariance truth = q_posterior_mean_variance(x_start, x_t, t);
  const MeanVariance model = p_mean_variance(model_output, x_t, t, /*clip_denoised=*/false);
  const double log2 = std::log(2.0);
  const at::Tensor kl =
      mean_flat(normal_kl(truth.mean, truth.log_variance_clipped, model.mean, model.log_variance)) / log2;
  const at::Tensor decoder_nll =
      mean_flat(-discretized_gaussian_log_likelihood(x_start, model.mean, 0.5 * model.log_variance)) / log2;
  // At the first step the bound's term is the decoder's NLL of the data, elsewhere the KL.
  return at::where(t.to(kl.device()) == 0, decoder_nll, kl);
}

TrainingLosses GaussianDiffusion::training_losses(const ModelFn& model, const at::Tensor& x_start, const at::Tensor& t,
                                                  const at::Tensor& noise) const {
  TrainingLosses out;
  out.x_t = q_sample(x_start, t, noise);
  out.model_output = model(out.x_t, original_timesteps(t));
  const auto [eps, var_values] = split_output(out.model_output, out.x_t, "training loss");
  if (variance_ == VarianceType::LearnedRange) {
    // Learn the variance through the bound without letting the bound move the mean prediction.
    const at::Tensor frozen = at::cat({eps.detach(), var_values}, 1);
    out.vb = vb_terms_bpd(frozen, x_start, out.x_t, t);
  } else {
    out.vb = at::zeros({x_start.size(0)}, eps.options());
  }
  out.mse = mean_flat((noise - eps).pow(2));
  out.loss = variance_ == VarianceType::LearnedRange ? out.mse + out.vb : out.mse;
  return out;
}

}  // namespace lit
