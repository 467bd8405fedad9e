// Classifier-free guidance for text-conditioned models (PixArt-Σ, LiT-T2I), as a function the samplers call:
// the sampler stays independent of the model.
//
//   text_guided_noise_fn   PixArt's model_wrapper for its DPM-Solver: one forward over [x; x] with captions
//                          [null; cond] and eps = eps_null + s (eps_cond - eps_null) on every eps channel.
//   text_guided_model_fn   the same for DDPM / DDIM (sampler.h), which want the full output (eps and, for
//                          learned sigma, the variance channels): batch [cond; null], combined by
//                          combine_guided_halves (guidance.h; variance channels from the conditional half).
//
// Masks: the official pipeline pairs the null caption with the conditional prompt's mask (null_mask left
// undefined); the diffusers pipeline gives the negative prompt its own mask (set null_mask).
// How DDIM drives a text model:
//   auto fn = text_guided_model_fn([&](auto& x, auto& t, auto& y, auto& m) { return model->forward(x, t, y, m); },
//                                  cond);
//   DDIMSampler().sample(fn, diffusion, x_T, noise);       // t: the original int64 timesteps
#pragma once

#include <ATen/ATen.h>

#include <functional>

#include "sampler/dpm_solver_vp.h"
#include "sampler/guidance.h"
#include "sampler/model_fn.h"

namespace lit {

// (x, t, y (B, 1, L, C) caption features, mask (B, L)) -> the model output (eps, or eps and variance).
using TextConditionalFn =
    std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, const at::Tensor& mask)>;

struct TextCondition {
  at::Tensor caption;       // (B, 1, L, C)
  at::Tensor mask;          // (B, L); undefined: every token
  at::Tensor null_caption;  // (B, 1, L, C) (or (1, 1, L, C), repeated); needed when scale != 1
  at::Tensor null_mask;     // (B, L); undefined: the conditional mask (official)
  double scale = 4.5;       // 1: no guidance, the null branch is never computed
};

// For dpm_solver_sample: eps_fn returns eps (B, C, H, W) (e.g. PixArtMS::forward_eps). Throws lit::Error on
// inconsistent shapes.
NoiseFn text_guided_noise_fn(TextConditionalFn eps_fn, TextCondition condition);

// For DDPMSampler / DDIMSampler / DPMSolverPP2MSampler: forward returns the full output; `channels` as guidance.h.
ModelFn text_guided_model_fn(TextConditionalFn forward, TextCondition condition,
                             GuidanceChannels channels = GuidanceChannels::All);

}  // namespace lit
