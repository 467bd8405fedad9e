// Samplers: the reverse process from noise to a sample, behind one interface.
//   DDPM           ancestral sampling with the model's variance (DiT's p_sample_loop; 250 steps is the FID
//                  protocol)
//   DDIM           deterministic for eta = 0 (DiT's ddim_sample_loop), stochastic for eta > 0
//   DPM-Solver++   the 2M multistep solver in data-prediction form (Lu et al. 2022), for 10-25 steps
// Each runs over the steps of a (respaced) GaussianDiffusion, from its last step to step 0, calling the
// model with the original timesteps; the number of model calls is the number of respaced steps.
//
// Progress and control: `SamplingControl::on_step` is called after every step with timing and, only when
// asked, the current x_0 prediction for previews. `SamplingControl::cancel` is read before every model call;
// once it is set, sample() throws lit::Cancelled before calling the model again (so within one step), and
// nothing it would have returned exists.
#pragma once

#include <ATen/ATen.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sampler/gaussian_diffusion.h"
#include "sampler/model_fn.h"
#include "sampler/noise.h"

namespace lit {

// Thrown by a sampler whose cancel flag was set. Not a lit::Error: cancelling is the user's choice, not a
// failure, so front ends can tell them apart (both are std::exceptions).
class Cancelled : public std::runtime_error {
 public:
  Cancelled() : std::runtime_error("sampling cancelled") {}
};

struct StepProgress {
  int64_t step = 0;        // steps done, 1..total
  int64_t total = 0;       // steps in the run
  double elapsed_s = 0;    // since sample() started
  double remaining_s = 0;  // estimate: mean time per step so far times the steps left
  at::Tensor pred_x0;      // the current x_0 prediction (B, C, H, W); defined only if want_preview
};

struct SamplingControl {
  std::function<void(const StepProgress&)> on_step;  // may be empty
  bool want_preview = false;                         // fill StepProgress::pred_x0
  const std::atomic<bool>* cancel = nullptr;         // may be null
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual std::string name() const = 0;

  // Runs the reverse process from x_T (B, C, H, W), noise at the process's last step, on x_T's device and
  // dtype (float32 or float64; model outputs are cast to it). `noise` provides the per-step noise of the
  // stochastic samplers (drawn on the CPU, moved to x_T's device). Gradients are off inside.
  // Throws lit::Cancelled, lit::Error (bad shapes), or whatever the model throws.
  virtual at::Tensor sample(const ModelFn& model, const GaussianDiffusion& diffusion, const at::Tensor& x_T,
                            NoiseSource& noise, const SamplingControl& control = {}) const = 0;
};

struct SamplerOptions {
  double eta = 0.0;            // DDIM only: 0 deterministic, 1 DDPM-like noise
  bool clip_denoised = false;  // clamp each x_0 prediction to [-1, 1] (pixel models; off for latents)
};

class DDPMSampler : public Sampler {
 public:
  explicit DDPMSampler(bool clip_denoised = false) : clip_denoised_(clip_denoised) {}
  std::string name() const override { return "ddpm"; }
  at::Tensor sample(const ModelFn& model, const GaussianDiffusion& diffusion, const at::Tensor& x_T, NoiseSource& noise,
                    const SamplingControl& control = {}) const override;

 private:
  bool clip_denoised_;
};

class DDIMSampler : public Sampler {
 public:
  explicit DDIMSampler(double eta = 0.0, bool clip_denoised = false);
  std::string name() const override { return "ddim"; }
  at::Tensor sample(const ModelFn& model, const GaussianDiffusion& diffusion, const at::Tensor& x_T, NoiseSource& noise,
                    const SamplingControl& control = {}) const override;

 private:
  double eta_;
  bool clip_denoised_;
};

// DPM-Solver++(2M) on the respaced discrete schedule, with alpha_t = sqrt(abar_t), sigma_t =
// sqrt(1 - abar_t), lambda_t = log(alpha_t / sigma_t). From step s to the next step t (h = lambda_t -
// lambda_s) with the x_0 predictions D_s and, from the step before, D_q:
//   first step:  x_t = (sigma_t / sigma_s) x_s - alpha_t (e^{-h} - 1) D_s        (= DDIM)
//   later steps: the same with D = (1 + 1/(2r)) D_s - 1/(2r) D_q, r = h_prev / h.
// The step after step 0 lands on the clean end (abar = 1), where the update is D_s itself. The last two
// updates (into step 0 and to the clean end) are first order, as DPM-Solver's lower_order_final: on a
// time-uniform grid the last lambda interval is several times the one before (about 4x at 20 steps), and
// extrapolating x_0 linearly over it overshoots (on Gaussian data of std 0.3 the order-2 final steps give
// std 0.39 at 20 steps, DDIM 0.24, this 0.26).
class DPMSolverPP2MSampler : public Sampler {
 public:
  explicit DPMSolverPP2MSampler(bool clip_denoised = false) : clip_denoised_(clip_denoised) {}
  std::string name() const override { return "dpm++2m"; }
  at::Tensor sample(const ModelFn& model, const GaussianDiffusion& diffusion, const at::Tensor& x_T, NoiseSource& noise,
                    const SamplingControl& control = {}) const override;

 private:
  bool clip_denoised_;
};

// The canonical sampler name of any spelling the front ends accept or image tools write: "ddpm", "ddim",
// "dpm++2m" (also "dpmpp2m", "dpm-solver++", "dpmsolver++", "DPM++ 2M"; any case, spaces ignored), or nothing.
std::optional<std::string> canonical_sampler_name(const std::string& name);
// {"ddpm", "ddim", "dpm++2m"}: the canonical names, in the order the front ends offer them.
const std::vector<std::string>& sampler_names();

// By any name canonical_sampler_name() reads. Throws lit::Error naming the choices.
std::unique_ptr<Sampler> make_sampler(const std::string& name, const SamplerOptions& options = {});

}  // namespace lit
