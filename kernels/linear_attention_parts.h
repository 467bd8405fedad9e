// Internal to kernels/: the pieces linear_attention.cpp and linear_attention_composed.cpp share.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace lit::kernels::detail {

// Throws c10::Error naming the first argument that does not fit linear_attention()'s contract.
void check_arguments(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                     const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w);

// The kernel function phi(x) = relu(x) + 1e-6.
at::Tensor phi(const at::Tensor& x);

// The depthwise convolution of v in ATen ops: (B, N, D) in, (B, N, D) out (a permuted view).
at::Tensor depthwise_conv_reference(const at::Tensor& v, int64_t heads, const at::Tensor& dwc_weight,
                                    const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w);

#ifdef LIT_WITH_CUDA
// The depthwise convolution by the token-layout CUDA kernel (bf16/fp16), written into out (B, N, D) or, with
// accumulate, added to it. version: see cuda::DwcArgs.
void depthwise_conv_cuda(const at::Tensor& v, int64_t heads, const at::Tensor& dwc_weight, const at::Tensor& dwc_bias,
                         int64_t grid_h, int64_t grid_w, const at::Tensor& out, bool accumulate, int version = 0);
#endif

}  // namespace lit::kernels::detail
