#include "sampler/distillation.h"

#include <ATen/core/grad_mode.h>

#include "common/error.h"

namespace lit {

DistillationLosses hybrid_distillation_terms(const TrainingLosses& student, const at::Tensor& teacher_output,
                                             int64_t channels, const DistillationWeights& weights) {
  const at::Tensor& s = student.model_output;
  const at::Tensor teacher = teacher_output.detach().to(s.scalar_type());
  const bool shapes_ok = s.dim() >= 2 && teacher.dim() == s.dim() && teacher.size(0) == s.size(0) &&
                         s.size(1) >= channels && teacher.size(1) >= channels &&
                         s.sizes().slice(2) == teacher.sizes().slice(2);
  if (!shapes_ok) throw Error("distillation: the teacher's and the student's outputs do not match in shape");
  DistillationLosses out;
  out.student = student;
  out.eps = mean_flat((teacher.narrow(1, 0, channels) - s.narrow(1, 0, channels)).pow(2));
  const bool both_learn_variance = s.size(1) == 2 * channels && teacher.size(1) == 2 * channels;
  out.var = both_learn_variance
                ? mean_flat((teacher.narrow(1, channels, channels) - s.narrow(1, channels, channels)).pow(2))
                : at::zeros_like(out.eps);
  out.total = student.loss + weights.lambda_eps * out.eps + weights.lambda_var * out.var;
  return out;
}

DistillationLosses hybrid_distillation_losses(const GaussianDiffusion& diffusion, const ModelFn& student,
                                              const ModelFn& teacher, const at::Tensor& x_start, const at::Tensor& t,
                                              const at::Tensor& noise, const DistillationWeights& weights) {
  const TrainingLosses s = diffusion.training_losses(student, x_start, t, noise);
  at::Tensor teacher_output;
  {
    at::NoGradGuard no_grad;
    teacher_output = teacher(s.x_t, diffusion.original_timesteps(t));
  }
  return hybrid_distillation_terms(s, teacher_output, x_start.size(1), weights);
}

}  // namespace lit
