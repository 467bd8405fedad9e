#include "sampler/reverse_loop.h"

#include <ATen/core/grad_mode.h>

#include <chrono>
#include <string>

#include "common/error.h"

namespace lit::detail {

at::Tensor run_reverse_process(const ModelFn& model, const GaussianDiffusion& diffusion, const at::Tensor& x_T,
                               const SamplingControl& control, const ReverseStep& step) {
  if (!x_T.defined() || x_T.dim() < 2) throw Error("sampler: the initial noise must be a (B, C, H, W) tensor");
  if (x_T.scalar_type() != at::kFloat && x_T.scalar_type() != at::kDouble)
    throw Error(std::string("sampler: the initial noise must be float32 or float64, got ") +
                c10::toString(x_T.scalar_type()));
  if (!model) throw Error("sampler: no model");

  at::NoGradGuard no_grad;
  const auto start = std::chrono::steady_clock::now();
  const int64_t total = diffusion.num_timesteps();
  const int64_t batch = x_T.size(0);
  const auto long_options = at::TensorOptions().dtype(at::kLong).device(x_T.device());
  at::Tensor x = x_T;
  for (int64_t done = 0; done < total; ++done) {
    if (control.cancel && control.cancel->load()) throw Cancelled();
    const int64_t i = total - 1 - done;
    const at::Tensor t = at::full({batch}, i, long_options);
    const at::Tensor t_original = at::full({batch}, diffusion.schedule().timestep_map[i], long_options);
    const at::Tensor output = model(x, t_original);
    if (!output.defined()) throw Error("sampler: the model returned no tensor");
    at::Tensor pred_x0;
    x = step(x, i, t, output, pred_x0);
    if (control.on_step) {
      StepProgress progress;
      progress.step = done + 1;
      progress.total = total;
      progress.elapsed_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      progress.remaining_s = progress.elapsed_s / static_cast<double>(done + 1) * static_cast<double>(total - done - 1);
      if (control.want_preview) progress.pred_x0 = pred_x0;
      control.on_step(progress);
    }
  }
  return x;
}

at::Tensor step_noise(NoiseSource& noise, const at::Tensor& like) {
  const at::Tensor n = noise.draw(like.sizes());
  if (!n.defined() || n.sizes() != like.sizes())
    throw Error("sampler: the noise source returned noise of the wrong shape");
  if (!like.is_cuda()) return n.to(like.device(), like.scalar_type());
  // Through page-locked memory without waiting: a copy from pageable memory would make the host wait for the
  // GPU to finish the work queued before it (the step's model call) every step.
  return n.to(like.scalar_type()).pin_memory().to(like.device(), /*non_blocking=*/true);
}

}  // namespace lit::detail
