// The Gaussian likelihood terms of the variational bound (DiT's diffusion_utils), elementwise in the
// inputs' dtype. Results are in nats.
#pragma once

#include <ATen/ATen.h>

namespace lit {

// KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))), broadcasting.
at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2);

// The tanh approximation of the standard normal CDF that the reference uses (not erf).
at::Tensor approx_standard_normal_cdf(const at::Tensor& x);

// log p(x) of a Gaussian discretised to the 256 levels of uint8 data rescaled to [-1, 1]: the mass of the
// bin of width 2/255 around x, with the outermost bins extended to infinity. x, means and log_scales (log
// standard deviations) have the same shape.
at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales);

}  // namespace lit
