#include "model/backbone/attention.h"

#include <ATen/core/grad_mode.h>

#include "kernels/adaln.h"
#include "kernels/linear_attention.h"
#include "kernels/runtime/torch_compat.h"

namespace lit::dit {

kernels::Pass call_pass(const torch::nn::Module& module) {
  if (at::GradMode::is_enabled())
    for (const at::Tensor& p : module.parameters())
      if (p.requires_grad()) return kernels::Pass::Training;
  return kernels::Pass::Inference;
}

at::Tensor SelfAttention::forward(const at::Tensor& x, int64_t grid_h, int64_t grid_w) {
  return forward(x, grid_h, grid_w, call_pass(*this));
}

void set_execution(torch::nn::Module& root, const kernels::ExecutionOptions& options) {
  for (const auto& module : root.modules(/*include_self=*/true))
    if (auto* attention = dynamic_cast<SelfAttention*>(module.get())) attention->set_execution(options);
}

// ---------------------------------------------------------------------------------------------------------
// Softmax attention
// ---------------------------------------------------------------------------------------------------------
SoftmaxAttention::SoftmaxAttention(int64_t dim, int64_t num_heads, const at::TensorOptions& options)
    : SelfAttention("Attention"), num_heads(num_heads) {
  qkv = register_module("qkv", Linear(dim, 3 * dim, options));
  proj = register_module("proj", Linear(dim, dim, options));
}

at::Tensor SoftmaxAttention::forward(const at::Tensor& x, int64_t, int64_t, kernels::Pass pass) {
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2), d = D / num_heads;
  // (B, N, 3D) -> (3, B, heads, N, d)
  const at::Tensor qkv_h = qkv(x).reshape({B, N, 3, num_heads, d}).permute({2, 0, 3, 1, 4});
  const at::Tensor out =
      compat::scaled_dot_product_attention(qkv_h[0], qkv_h[1], qkv_h[2], kernel_pass(pass));  // (B, heads, N, d)
  return proj(out.transpose(1, 2).reshape({B, N, D}));
}

void SoftmaxAttention::reset_parameters() {
  linear_xavier_init_(*qkv);
  linear_xavier_init_(*proj);
}

// ---------------------------------------------------------------------------------------------------------
// Linear attention
// ---------------------------------------------------------------------------------------------------------
LinearAttention::LinearAttention(int64_t dim, int64_t num_heads, int64_t dwc_kernel, const at::TensorOptions& options)
    : SelfAttention("LinearAttention"), num_heads(num_heads) {
  const int64_t d = dim / num_heads;
  q = register_module("q", Linear(dim, dim, options));
  kv = register_module("kv", Linear(dim, 2 * dim, options));
  dwc =
      register_module("dwc", Conv2d(d, d, dwc_kernel, /*stride=*/1, /*padding=*/dwc_kernel / 2, /*groups=*/d, options));
  proj = register_module("proj", Linear(dim, dim, options));
}

at::Tensor LinearAttention::forward(const at::Tensor& x, int64_t grid_h, int64_t grid_w, kernels::Pass call) {
  const int64_t D = x.size(2);
  const kernels::Pass pass = kernel_pass(call);
  const kernels::AttentionImpl impl = execution_.attention;
  if (kernels::half_precision_cuda_inference(x, pass)) {
    // One GEMM for [q | k | v]; the kernels read the three as strided views.
    const auto [weight, bias] = merged_qkv();
    const at::Tensor qkv_out = at::linear(x, weight, bias);
    return proj(kernels::linear_attention(qkv_out.narrow(2, 0, D), qkv_out.narrow(2, D, D), qkv_out.narrow(2, 2 * D, D),
                                          num_heads, dwc->weight, dwc->bias, grid_h, grid_w, impl, pass));
  }
  const at::Tensor k_v = kv(x);
  const at::Tensor o = kernels::linear_attention(q(x), k_v.narrow(2, 0, D), k_v.narrow(2, D, D), num_heads, dwc->weight,
                                                 dwc->bias, grid_h, grid_w, impl, pass);
  return proj(o);
}

std::pair<at::Tensor, at::Tensor> LinearAttention::merged_qkv() {
  const std::vector<const at::Tensor*> parts = {&q->weight, &kv->weight, &q->bias, &kv->bias};
  std::vector<const void*> from;
  std::vector<int64_t> versions;
  for (const at::Tensor* t : parts) {
    from.push_back(t->data_ptr());
    versions.push_back(static_cast<int64_t>(t->_version()));
  }
  if (!merged_weight_.defined() || from != merged_from_ || versions != merged_versions_) {
    const at::NoGradGuard no_grad;
    merged_weight_ = at::cat({q->weight, kv->weight}, 0);
    merged_bias_ = at::cat({q->bias, kv->bias}, 0);
    merged_from_ = std::move(from);
    merged_versions_ = std::move(versions);
  }
  return {merged_weight_, merged_bias_};
}

void LinearAttention::reset_parameters() {
  linear_xavier_init_(*q);
  linear_xavier_init_(*kv);
  conv2d_default_init_(*dwc);
  linear_xavier_init_(*proj);
}

}  // namespace lit::dit
