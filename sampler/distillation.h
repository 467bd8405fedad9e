// LiT's hybrid knowledge distillation: the student's own diffusion loss plus matching the teacher's noise
// prediction and its variance output,
//   total = loss + lambda_eps * mean((eps_T - eps_S)^2) + lambda_var * mean((v_T - v_S)^2),
// means over C, H, W per sample, v the raw variance channels (before the learned-range mapping).
#pragma once

#include <ATen/ATen.h>

#include "sampler/gaussian_diffusion.h"
#include "sampler/model_fn.h"

namespace lit {

struct DistillationWeights {
  double lambda_eps = 0.5;
  double lambda_var = 0.05;
};

// Per-sample terms, each (B,).
struct DistillationLosses {
  TrainingLosses student;  // the student's own DiT loss (loss, mse, vb) and its output
  at::Tensor eps;          // mean over C,H,W of (eps_T - eps_S)^2
  at::Tensor var;          // the same over the variance channels; zeros when either model has none
  at::Tensor total;        // student.loss + lambda_eps * eps + lambda_var * var
};

// The distillation terms from both outputs (B, 2C or C, H, W); the teacher's is detached. `channels` is C.
// Throws lit::Error on mismatched shapes.
DistillationLosses hybrid_distillation_terms(const TrainingLosses& student, const at::Tensor& teacher_output,
                                             int64_t channels, const DistillationWeights& weights = {});

// Runs both: the student's training loss at (x_start, t, noise), then the teacher on the same x_t and
// timesteps without gradients.
DistillationLosses hybrid_distillation_losses(const GaussianDiffusion& diffusion, const ModelFn& student,
                                              const ModelFn& teacher, const at::Tensor& x_start, const at::Tensor& t,
                                              const at::Tensor& noise, const DistillationWeights& weights = {});

}  // namespace lit
