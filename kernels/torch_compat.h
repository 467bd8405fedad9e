// The few places where LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (CUDA builds) differ, kept here so the
// rest of the code base has no version #ifs.
#pragma once

#include <ATen/ATen.h>
#include <torch/version.h>

#define LIT_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace lit::compat {

// softmax(q k^T / sqrt(d)) v over (B, heads, N, d) tensors. LibTorch 2.x has a fused operator (flash or
// memory-efficient attention on CUDA); 1.13 only has the private math kernel, so we spell it out.
inline at::Tensor scaled_dot_product_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
#if LIT_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v);
#else
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  return at::matmul(at::softmax(at::matmul(q * scale, k.transpose(-2, -1)), -1), v);
#endif
}

// The LibTorch version this binary was built against, e.g. "1.13.0".
inline const char* torch_version() { return TORCH_VERSION; }

}  // namespace lit::compat
