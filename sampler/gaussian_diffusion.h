// GaussianDiffusion: DiT's diffusion process (facebookresearch/DiT diffusion/gaussian_diffusion.py) for an
// epsilon-predicting model: forward noising q(x_t | x_0), the posterior q(x_{t-1} | x_t, x_0), the model's
// reverse step p(x_{t-1} | x_t) with learned-range or fixed variance, and the training loss (MSE on eps plus
// the variational bound term for the variance).
//
// Timesteps `t` are always steps of THIS (possibly respaced) process, int64 tensors of shape (B,); the model
// is called with the original timesteps (timestep_map). Per-step coefficients are kept in float64 and, as
// in the reference, rounded to float32 when applied to float32 tensors (float64 tensors get them in
// float64), so float32 results match DiT's to rounding.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "sampler/model_fn.h"
#include "sampler/schedule.h"

namespace lit {

// How the reverse step's variance is chosen.
enum class VarianceType {
  LearnedRange,  // the model outputs 2C channels; v in [-1, 1] interpolates log variance between the clipped
                 // posterior log variance (v = -1) and log beta_t (v = +1). DiT's models.
  FixedSmall,    // the posterior variance (beta tilde); the model outputs eps (C channels; 2C are accepted and
                 // the variance half ignored)
  FixedLarge,    // beta_t (with step 0 taking the posterior variance of step 1, as the reference does)
};
const char* variance_type_name(VarianceType type);  // "learned-range", "fixed-small", "fixed-large"

// q(x_{t-1} | x_t, x_0), each broadcast to x's shape.
struct PosteriorMeanVariance {
  at::Tensor mean;
  at::Tensor variance;
  at::Tensor log_variance_clipped;
};

// p(x_{t-1} | x_t) as the model predicts it, each of x's shape.
struct MeanVariance {
  at::Tensor mean;
  at::Tensor variance;
  at::Tensor log_variance;
  at::Tensor pred_xstart;  // the model's prediction of x_0
};

// Per-sample training terms, each of shape (B,). For a fixed-variance model `vb` is zeros and
// loss == mse. `x_t` and `model_output` are returned for the distillation loss (which needs the teacher on
// the same x_t and the student's raw output).
struct TrainingLosses {
  at::Tensor loss;  // mse + vb
  at::Tensor mse;   // mean over C,H,W of (noise - eps)^2
  at::Tensor vb;    // variational bound term in bits: KL to the true posterior, decoder NLL at t == 0
  at::Tensor x_t;
  at::Tensor model_output;
};

// The diffusion's coefficient tables as device tensors, made once per (table, device, dtype) for extract() on
// a GPU. Copying (or moving) a GaussianDiffusion gives the copy an empty cache, so that an entry never outlives
// the vector it was made from.
class DeviceTableCache {
 public:
  DeviceTableCache() = default;
  DeviceTableCache(const DeviceTableCache&) {}
  DeviceTableCache& operator=(const DeviceTableCache&);

  // table (a vector the owner keeps alive and unchanged) as a 1-D tensor of dtype on device.
  at::Tensor get(const void* table, const std::function<at::Tensor()>& make_on_cpu, at::Device device,
                 at::ScalarType dtype);

 private:
  struct Entry {
    const void* table;
    at::Device device;
    at::ScalarType dtype;
    at::Tensor values;
  };
  std::mutex mutex_;
  std::vector<Entry> entries_;
};

class GaussianDiffusion {
 public:
  explicit GaussianDiffusion(DiffusionSchedule schedule, VarianceType variance = VarianceType::LearnedRange);

  // DiT's create_diffusion(respacing): linear betas over `diffusion_steps`, respaced ("" = all steps,
  // "250", "ddim50", "10,15,20"). Throws lit::Error for a respacing that cannot be made.
  static GaussianDiffusion create(const std::string& respacing = "", VarianceType variance = VarianceType::LearnedRange,
                                  int64_t diffusion_steps = 1000);

  const DiffusionSchedule& schedule() const { return schedule_; }
  int64_t num_timesteps() const { return schedule_.size(); }
  VarianceType variance_type() const { return variance_; }

  // timestep_map[t], on t's device: what the model is called with.
  at::Tensor original_timesteps(const at::Tensor& t) const;

  // Timesteps on a CUDA device are gathered there, from tables moved to it once, and never read back: a
  // sampler's or trainer's steps then queue without waiting for the GPU. Their range is checked on the host
  // only for CPU timesteps; on a GPU they come from the samplers and the trainer, which make them in range
  // (an out-of-range one there is a device-side index error, never a wrong coefficient).

  // x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise.
  at::Tensor q_sample(const at::Tensor& x_start, const at::Tensor& t, const at::Tensor& noise) const;
  PosteriorMeanVariance q_posterior_mean_variance(const at::Tensor& x_start, const at::Tensor& x_t,
                                                  const at::Tensor& t) const;

  // The reverse step from a model output already computed at (x_t, t); clip_denoised clamps the predicted
  // x_0 to [-1, 1] (off for latents, as DiT samples). Throws lit::Error if the output has the wrong shape.
  MeanVariance p_mean_variance(const at::Tensor& model_output, const at::Tensor& x_t, const at::Tensor& t,
                               bool clip_denoised = false) const;

  // The x_0 prediction alone (what the deterministic samplers need), equal to p_mean_variance's.
  at::Tensor predict_xstart(const at::Tensor& model_output, const at::Tensor& x_t, const at::Tensor& t,
                            bool clip_denoised = false) const;
  at::Tensor predict_xstart_from_eps(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& eps) const;
  at::Tensor predict_eps_from_xstart(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& x_start) const;

  // The variational bound term at t in bits per sample (B,): KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) for
  // t > 0, the discretised decoder NLL of x_0 at t == 0. No clipping.
  at::Tensor vb_terms_bpd(const at::Tensor& model_output, const at::Tensor& x_start, const at::Tensor& x_t,
                          const at::Tensor& t) const;

  // DiT's training loss for one timestep per sample: calls model(q_sample(x_start, t, noise), original t).
  // With learned variance the VB term sees the eps half detached (the "frozen mean": the bound trains only
  // the variance), so gradients reach the eps channels through the MSE alone. Gradients flow when autograd
  // is on and the model's parameters require them.
  TrainingLosses training_losses(const ModelFn& model, const at::Tensor& x_start, const at::Tensor& t,
                                 const at::Tensor& noise) const;

  // Gathers arr[t] as a (B, 1, ..., 1) tensor with like's rank, in like's floating dtype (float32 for any
  // dtype but float64) and device. arr is one of this diffusion's tables (schedule() or its own); another
  // vector is gathered through the host.
  at::Tensor extract(const std::vector<double>& arr, const at::Tensor& t, const at::Tensor& like) const;

 private:
  bool owns(const void* table) const;
  void check_timesteps(const at::Tensor& t, const at::Tensor& x, const char* what) const;
  // Splits a model output into (eps, variance values or undefined), checking its channels against x.
  std::pair<at::Tensor, at::Tensor> split_output(const at::Tensor& model_output, const at::Tensor& x,
                                                 const char* what) const;

  DiffusionSchedule schedule_;
  VarianceType variance_;
  std::vector<double> log_betas_;        // the upper end of the learned range
  std::vector<double> fixed_large_var_;  // betas with step 0 replaced by posterior_variance[1]
  std::vector<double> fixed_large_log_var_;
  mutable DeviceTableCache device_tables_;
};

// Mean over every dimension but the first: (B, ...) -> (B,).
at::Tensor mean_flat(const at::Tensor& x);

}  // namespace lit
