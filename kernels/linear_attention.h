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
// One entry point: the ATen reference on any device today; a CUDA kernel will sit behind the same function.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace lit::kernels {

// q, k, v: (B, N, D), already projected (k and v may be views into one kv tensor). dwc_weight (d, 1, k, k),
// dwc_bias (d), with d = D / heads. grid_h * grid_w == N, tokens in row-major order. Returns (B, N, D).
at::Tensor linear_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                            const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h, int64_t grid_w);

// The reference, in the order of operations of the PyTorch module (float32 matches it to ~1e-7).
at::Tensor linear_attention_reference(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                      const at::Tensor& dwc_weight, const at::Tensor& dwc_bias, int64_t grid_h,
                                      int64_t grid_w);

}  // namespace lit::kernels
