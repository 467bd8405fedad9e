// LiT's simplified linear attention, the part between the input projections (q, kv) and the output
// projection (proj). With phi(x) = relu(x) + 1e-6 applied to q and k, per head h (d = D / heads channels):
//
//   z   = 1 / (phi(q) . mean_over_tokens(phi(k)) + 1e-6)                    (N, 1)
//   kv  = (phi(k)^T N^-1/2) (v N^-1/2)                                       (d, d)
//   o_h = (phi(q) kv) * z                                                    (N, d)
//
// Heads are merged to (B, N, D) with channel head * d + j. A depthwise convolution (d channels, k x k,
// padding k/2, weights shared by all heads) runs on v laid out as (B * heads, d, H, W); its output, read back
// as (B, D, N) with channel head * d + j, is added to o. The cost is O(N d^2) per head: linear in N.
//
// One entry point, linear_attention(): on CUDA tensors of bf16 or fp16 (when this build has CUDA kernels) the
// fused kernels of linear_attention_cuda.cu, with a fused backward when gradients are recorded; on the CPU the
// composed form (linear_attention_composed(): a few BLAS products per head, within 1e-6 of the reference in
// float32, and faster, for inference and training); the ATen reference everywhere else. The caller chooses
// the implementation (kernels/execution.h AttentionImpl) and says what the call is (Pass).
//
// The fused path computes, per (batch, head), with Q = phi(q), K = phi(k) and float32 accumulation:
//   state S = K^T V / N (d x d, float32), m = sum_n K_n / N (d, float32)        one reduction over tokens
//   o_n = (Q_n S) z_n with z_n = 1 / (Q_n . m + 1e-6), plus dwc(v)              one pass over the queries
// (N^-1/2 N^-1/2 = 1/N, and Q . mean(K) = Q . m). The backward, with g_n = dO_n . (Q_n S) and
// A = relu'(q), B = relu'(k) the masks of phi:
//   dq_n = A * (z_n dO_n S^T - z_n^2 g_n m)
//   dS = sum_n Q_n^T (z_n dO_n),  dm = -sum_n z_n^2 g_n Q_n
//   dk_n = B * (V_n dS^T + dm) / N,  dv_n = K_n dS / N  (+ the convolution's own gradient)
// linear_attention_core_backward_reference() writes that algebra in ATen ops; tests check it against
// autograd, and the CUDA backward against both.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "kernels/execution.h"

namespace lit::kernels {

// q, k, v: (B, N, D), already projected (k and v may be views into one kv tensor). dwc_weight (d, 1, k, k),
// dwc_bias (d), with d = D / heads. grid_h * grid_w == N, tokens in row-major order. Returns (B, N, D).
// impl: which implementation (AttentionImpl::Auto: the fused kernels, forward or forward and backward, for
// CUDA bf16/fp16; the composed form on the CPU; the reference otherwise). pass: a training pass takes the
// operators whose backward exists even when nothing is recorded (activation checkpointing's first forward).
at::Tensor linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                            const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w,
                            AttentionImpl impl = AttentionImpl::Auto, Pass pass = Pass::Inference);

// The reference, in the order of operations of the PyTorch module (float32 matches it to ~1e-7).
at::Tensor linear_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                      const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h,
                                      int64_t grid_w);

// The attention alone, without the depthwise convolution: (phi(q) S) z, heads merged. Reference ops.
at::Tensor linear_attention_core_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                           int64_t heads);

struct LinearAttentionGrads {
  at::Tensor q, k, v;
};
// The gradients of linear_attention_core_reference() for an output gradient grad_out, by the formulas above.
LinearAttentionGrads linear_attention_core_backward_reference(const at::Tensor& q, const at::Tensor& k,
                                                              const at::Tensor& v, int64_t heads,
                                                              const at::Tensor& grad_out);

// The attention as a few large matrix products per head (cuBLAS on CUDA, BLAS on the CPU) in the input dtype,
// for any device and dtype, with gradients when they are recorded. Per head, with Q = phi(q), K = phi(k):
//   Linear     S' = [K^T V / N | m | 0] (d x (d + 8)), then Q S' gives the numerators and Q . m together;
//   Quadratic  A = Q K^T / N (N x N), then A V and the row sums of A;
//   Auto       quadratic when N < d (fewer multiply-adds, and A is smaller than the state), else linear.
// The state (or A) and the numerators are rounded to the dtype once each (as the fused version 3 rounds its
// state); the normaliser and the division are float32 (float64 for float64). For inference the heads are
// written into one output and the convolution is added by the token-layout CUDA kernel for CUDA bf16/fp16,
// by ATen otherwise; with gradients, ATen's convolution and autograd through every step.
enum class ComposedForm { Auto, Linear, Quadratic };
// pass: a training pass takes the differentiable form also when nothing is recorded.
at::Tensor linear_attention_composed(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                     const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h,
                                     int64_t grid_w, ComposedForm form = ComposedForm::Auto,
                                     Pass pass = Pass::Inference);

// The CUDA kernels by themselves, for tests and benchmarks (throw when this build has none, or for inputs
// that are not CUDA bf16/fp16 tensors):
// the fused forward including the depthwise convolution, recording nothing for autograd. version: 1 the
// register-staged kernels (any head dim); 2 the asynchronous-copy kernels (head dim and strides multiples
// of 8), the state entering the product as a high + low pair of bf16/fp16 (~16 mantissa bits); 3 as 2 with
// the state rounded once to bf16/fp16 for the product (half its tensor-core work, the state's rounding error
// about that of the bf16 output); 0 the best that applies (2, else 1).
at::Tensor linear_attention_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                 const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h,
                                 int64_t grid_w, int version = 0);
// the attention alone as an autograd function (forward and backward kernels), as training uses it.
at::Tensor linear_attention_core_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads);

}  // namespace lit::kernels
