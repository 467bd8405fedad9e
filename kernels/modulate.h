// adaLN modulation, DiT's modulate(): out = x * (1 + scale) + shift, with x of shape (B, N, D) and
// shift/scale of shape (B, D) broadcast over the N tokens.
// One entry point: the ATen reference on any device, the CUDA kernel for CUDA tensors of float32,
// float16 or bfloat16 when this build has it.
#pragma once

#include <ATen/ATen.h>

#include "kernels/execution.h"

namespace lit::kernels {

at::Tensor modulate(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, Pass pass = Pass::Inference);

// The shapes every adaLN operator takes (x (B, N, D), shift and scale (B, D)); throws c10::Error naming `op`.
void check_modulate_shapes(const char* op, const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale);

// The reference, written as DiT writes it; the CUDA kernel is tested against it.
at::Tensor modulate_reference(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale);

// A specific CUDA kernel version (see modulate_cuda.cu); for tests and benchmarks. Throws if unavailable.
at::Tensor modulate_cuda(const at::Tensor& x, const at::Tensor& shift, const at::Tensor& scale, int version);

}  // namespace lit::kernels
