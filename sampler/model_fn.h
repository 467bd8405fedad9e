// How the diffusion code sees a network: a callable, so the sampler depends on no model class and tests can
// feed it closed-form predictors.
#pragma once

#include <ATen/ATen.h>

#include <functional>

namespace lit {

// (x_t (B, C, H, W), t (B,) int64 ORIGINAL timesteps) -> model output (B, 2C, H, W) for a model with
// learned variance ([eps | variance values in [-1, 1]]) or (B, C, H, W) for eps alone.
using ModelFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t)>;

// A class-conditional network's forward (x, t, y (B,) int64 labels), e.g. DiT's forward(x, t, y).
using ClassConditionalFn = std::function<at::Tensor(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y)>;

}  // namespace lit
