// Self-attention of a DiT block, two kinds behind one interface:
//   SoftmaxAttention  DiT's (timm's Attention): qkv -> softmax(q k^T / sqrt(d)) v per head -> proj
//   LinearAttention   LiT's simplified linear attention: q, kv -> ReLU-kernel linear attention + 5x5
//                     depthwise conv on V (kernels/linear_attention.h) -> proj; few heads, O(N) in tokens
#pragma once

#include <utility>
#include <vector>

#include "model/backbone/layers.h"

namespace lit::dit {

class SelfAttention : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  // x: (B, N, D) tokens of a grid_h x grid_w grid, row-major. Returns (B, N, D).
  virtual at::Tensor forward(const at::Tensor& x, int64_t grid_h, int64_t grid_w) = 0;
  // Fresh weights: Xavier-uniform linears, zero biases, PyTorch's default for convolutions.
  virtual void reset_parameters() = 0;
};

// ---------------------------------------------------------------------------------------------------------
// Softmax attention: attn.qkv (Linear D -> 3D, output [q | k | v], each head-major), attn.proj.
// ---------------------------------------------------------------------------------------------------------
class SoftmaxAttention : public SelfAttention {
 public:
  SoftmaxAttention(int64_t dim, int64_t num_heads, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, int64_t grid_h, int64_t grid_w) override;
  void reset_parameters() override;

  Linear qkv{nullptr}, proj{nullptr};
  int64_t num_heads;
};

// ---------------------------------------------------------------------------------------------------------
// LiT's linear attention: attn.q (D -> D), attn.kv (D -> 2D, output [k | v]), attn.dwc (depthwise Conv2d
// d -> d, k x k, shared by the heads, d = D / heads), attn.proj (D -> D).
// ---------------------------------------------------------------------------------------------------------
class LinearAttention : public SelfAttention {
 public:
  LinearAttention(int64_t dim, int64_t num_heads, int64_t dwc_kernel, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, int64_t grid_h, int64_t grid_w) override;
  void reset_parameters() override;

  Linear q{nullptr}, kv{nullptr};
  Conv2d dwc{nullptr};
  Linear proj{nullptr};
  int64_t num_heads;

 private:
  // q and kv as one (3D, D) projection for the half-precision inference path: one GEMM instead of two. Built
  // on first use and rebuilt when a weight changes (new storage, or an in-place write bumps its version);
  // it costs a copy of the q and kv weights. Not thread-safe, like the module itself.
  std::pair<at::Tensor, at::Tensor> merged_qkv();
  at::Tensor merged_weight_, merged_bias_;
  std::vector<const void*> merged_from_;
  std::vector<int64_t> merged_versions_;
};

}  // namespace lit::dit
