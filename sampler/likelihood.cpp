#include "sampler/likelihood.h"

#include <cmath>

#include "common/error.h"

namespace lit {

at::Tensor normal_kl(const at::Tensor& mean1, const at::Tensor& logvar1, const at::Tensor& mean2,
                     const at::Tensor& logvar2) {
  return 0.5 * (-1.0 + logvar2 - logvar1 + at::exp(logvar1 - logvar2) + (mean1 - mean2).pow(2) * at::exp(-logvar2));
}

at::Tensor approx_standard_normal_cdf(const at::Tensor& x) {
  const double sqrt_2_over_pi = std::sqrt(2.0 / M_PI);
  return 0.5 * (1.0 + at::tanh(sqrt_2_over_pi * (x + 0.044715 * at::pow(x, 3))));
}

at::Tensor discretized_gaussian_log_likelihood(const at::Tensor& x, const at::Tensor& means,
                                               const at::Tensor& log_scales) {
  if (x.sizes() != means.sizes() || x.sizes() != log_scales.sizes())
    throw Error("discretized Gaussian log-likelihood: x, means and log scales must have the same shape");
  const double half_bin = 1.0 / 255.0;
  const at::Tensor centered = x - means;
  const at::Tensor inv_stdv = at::exp(-log_scales);
  const at::Tensor cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + half_bin));
  const at::Tensor cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - half_bin));
  const at::Tensor log_cdf_plus = at::log(cdf_plus.clamp_min(1e-12));
  const at::Tensor log_one_minus_cdf_min = at::log((1.0 - cdf_min).clamp_min(1e-12));
  const at::Tensor log_cdf_delta = at::log((cdf_plus - cdf_min).clamp_min(1e-12));
  // The lowest bin takes everything below it, the highest everything above.
  return at::where(x < -0.999, log_cdf_plus, at::where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta));
}

}  // namespace lit
