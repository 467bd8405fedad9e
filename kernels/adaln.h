// adaLN's normalise-then-modulate, DiT's modulate(norm(x), shift, scale), as one operator:
//   out = LayerNorm(x) * (1 + scale) + shift,  LayerNorm without affine parameters, eps 1e-6,
// x (B, N, D), shift/scale (B, D) broadcast over the N tokens (views such as chunks of adaLN's output are
// fine). On CUDA tensors of bf16 or fp16 (when this build has CUDA kernels) one kernel reads x once and
// writes out once, with the statistics and the arithmetic in float32 and one rounding at the end; everywhere
// else (float32 included, which stays bit-identical to before) the reference: ATen's layer_norm, then
// modulate().
#pragma once

#include <ATen/ATen.h>

#include "kernels/execution.h"

namespace lit::kernels {

// pass: an inference pass may take the kernel when nothing is recorded; a training pass takes the reference.
at::Tensor layer_norm_modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale,
                               Pass pass = Pass::Inference);

// The reference, as DiT writes it: modulate(layer_norm(x), shift, scale) in x's dtype.
// modulate() takes `pass` (its own kernel only on an inference pass).
at::Tensor layer_norm_modulate_reference(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale,
                                         Pass pass = Pass::Inference);

// The CUDA kernel by itself (tests and benchmarks); throws for other inputs or builds.
at::Tensor layer_norm_modulate_cuda(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale);

// Whether the fused half-precision inference path applies to activations like x: a CUDA bf16/fp16 tensor in
// a build with CUDA kernels, with gradients off, on an inference pass. The model takes its one-GEMM and
// fused-epilogue variants only then, so training and float32 keep the plain operators.
bool half_precision_cuda_inference(const at::Tensor& x, Pass pass = Pass::Inference);

}  // namespace lit::kernels
