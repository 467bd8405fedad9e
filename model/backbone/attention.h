// Self-attention of a DiT block, two kinds behind one interface:
//   SoftmaxAttention  DiT's (timm's Attention): qkv -> softmax(q k^T / sqrt(d)) v per head -> proj
//   LinearAttention   LiT's simplified linear attention: q, kv -> ReLU-kernel linear attention + 5x5
//                     depthwise conv on V (kernels/linear_attention.h) -> proj; few heads, O(N) in tokens
// Each carries the execution options it runs with (kernels/execution.h: attention implementation, precision
// path), set by the model that owns it (DiTImpl::set_execution) or by set_execution() below.
#pragma once

#include <utility>
#include <vector>

#include "kernels/execution.h"
#include "model/backbone/layers.h"

namespace lit::dit {

class SelfAttention : public torch::nn::Module {
 public:
  using torch::nn::Module::Module;
  // x: (B, N, D) tokens of a grid_h x grid_w grid, row-major. Returns (B, N, D). pass: what the call is
  // (kernels/execution.h); the three-argument form takes call_pass(*this).
  virtual at::Tensor forward(const at::Tensor& x, int64_t grid_h, int64_t grid_w, kernels::Pass pass) = 0;
  at::Tensor forward(const at::Tensor& x, int64_t grid_h, int64_t grid_w);
  // Fresh weights: Xavier-uniform linears, zero biases, PyTorch's default for convolutions.
  virtual void reset_parameters() = 0;

  void set_execution(const kernels::ExecutionOptions& options) { execution_ = options; }
  const kernels::ExecutionOptions& execution() const { return execution_; }

 protected:
  // The pass the kernels see: an inference pass on the plain precision path takes the training path's
  // operators (no inference-only kernels).
  kernels::Pass kernel_pass(kernels::Pass pass) const {
    return execution_.precision == kernels::PrecisionPath::Plain ? kernels::Pass::Training : pass;
  }
  kernels::ExecutionOptions execution_;
};

// Sets the execution options of every SelfAttention in a module tree (any model built from these modules).
void set_execution(torch::nn::Module& root, const kernels::ExecutionOptions& options);

// What a forward of `module` is: a training pass when autograd records it (grad mode on and a parameter of
// the module requires grad), else an inference pass.
kernels::Pass call_pass(const torch::nn::Module& module);

// ---------------------------------------------------------------------------------------------------------
// Softmax attention: attn.qkv (Linear D -> 3D, output [q | k | v], each head-major), attn.proj.
// ---------------------------------------------------------------------------------------------------------
class SoftmaxAttention : public SelfAttention {
 public:
  SoftmaxAttention(int64_t dim, int64_t num_heads, const at::TensorOptions& options);
  using SelfAttention::forward;
  at::Tensor forward(const at::Tensor& x, int64_t grid_h, int64_t grid_w, kernels::Pass pass) override;
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
  using SelfAttention::forward;
  at::Tensor forward(const at::Tensor& x, int64_t grid_h, int64_t grid_w, kernels::Pass pass) override;
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
