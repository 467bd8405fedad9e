// DiT's MLP first half, y = GELU_tanh(x W^T + b), with the GELU fused into the matrix product's epilogue
// (cuBLASLt through ATen's _addmm_activation) on the half-precision CUDA inference path.
// _addmm_activation's GELU is not the same function everywhere: LibTorch 1.13's CPU kernel applies the exact
// (erf) GELU, while DiT's MLP uses the tanh approximation. So the fused call is taken only where a one-time
// probe on that device type shows it computes the tanh form; otherwise the two plain operators run.
#pragma once

#include <ATen/ATen.h>

#include "kernels/execution.h"

namespace lit::kernels {

at::Tensor linear_gelu_tanh(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                            Pass pass = Pass::Inference);

// Whether _addmm_activation(use_gelu) computes the tanh approximation on this device type (probed once in
// float32, where the two GELUs differ by ~1e-4 relative).
bool fused_gelu_is_tanh(at::Device device);

}  // namespace lit::kernels
