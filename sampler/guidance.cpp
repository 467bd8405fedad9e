#include "sampler/guidance.h"

#include <algorithm>
#include <string>

#include "common/error.h"

namespace lit {

at::Tensor combine_guided_halves(const at::Tensor& output, int64_t latent_channels, double scale,
                                 GuidanceChannels channels) {
  if (output.dim() < 2 || output.size(0) % 2 != 0 || output.size(1) < latent_channels || latent_channels < 1)
    throw Error("classifier-free guidance: expected a doubled batch of at least " + std::to_string(latent_channels) +
                " channels");
  const int64_t half = output.size(0) / 2;
  const at::Tensor cond = output.narrow(0, 0, half);
  const at::Tensor uncond = output.narrow(0, half, half);
  const int64_t guided = channels == GuidanceChannels::DiT ? std::min<int64_t>(3, latent_channels) : latent_channels;
  const at::Tensor cond_eps = cond.narrow(1, 0, guided);
  const at::Tensor uncond_eps = uncond.narrow(1, 0, guided);
  const at::Tensor guided_eps = uncond_eps + scale * (cond_eps - uncond_eps);
  if (guided == output.size(1)) return guided_eps;
  return at::cat({guided_eps, cond.narrow(1, guided, output.size(1) - guided)}, 1);
}

ModelFn classifier_free_guidance(ClassConditionalFn forward, at::Tensor labels, const Guidance& guidance) {
  if (!forward) throw Error("classifier-free guidance: no model");
  if (!labels.defined() || labels.dim() != 1 || labels.scalar_type() != at::kLong)
    throw Error("classifier-free guidance: labels must be a 1-D int64 tensor");
  if (guidance.scale == 1.0) {
    return [forward = std::move(forward), labels = std::move(labels)](const at::Tensor& x, const at::Tensor& t) {
      if (x.size(0) != labels.size(0))
        throw Error("classifier-free guidance: " + std::to_string(labels.size(0)) + " labels for a batch of " +
                    std::to_string(x.size(0)));
      return forward(x, t, labels.to(x.device()));
    };
  }
  const at::Tensor doubled_labels = at::cat({labels, at::full_like(labels, guidance.null_class)});
  return [forward = std::move(forward), doubled_labels, guidance](const at::Tensor& x, const at::Tensor& t) {
    if (2 * x.size(0) != doubled_labels.size(0))
      throw Error("classifier-free guidance: " + std::to_string(doubled_labels.size(0) / 2) +
                  " labels for a batch of " + std::to_string(x.size(0)));
    const at::Tensor output = forward(at::cat({x, x}), at::cat({t, t}), doubled_labels.to(x.device()));
    return combine_guided_halves(output, x.size(1), guidance.scale, guidance.channels);
  };
}

}  // namespace lit
