#include "model/backbone/layers.h"

#include <ATen/core/grad_mode.h>

#include <cmath>

namespace lit::dit {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, const at::TensorOptions& options)
    : torch::nn::Module("Linear") {
  weight = register_parameter("weight", at::empty({out_features, in_features}, options));
  bias = register_parameter("bias", at::empty({out_features}, options));
}

Conv2dImpl::Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
                       int64_t groups, const at::TensorOptions& options)
    : torch::nn::Module("Conv2d"), stride_(stride), padding_(padding), groups_(groups) {
  weight = register_parameter("weight", at::empty({out_channels, in_channels / groups, kernel, kernel}, options));
  bias = register_parameter("bias", at::empty({out_channels}, options));
}

EmbeddingImpl::EmbeddingImpl(int64_t rows, int64_t dim, const at::TensorOptions& options)
    : torch::nn::Module("Embedding") {
  weight = register_parameter("weight", at::empty({rows, dim}, options));
}

// ---------------------------------------------------------------------------------------------------------
// Initialisers
// ---------------------------------------------------------------------------------------------------------
namespace {

// Runs fill(float32 tensor of the same shape) and copies the result into t.
template <typename Fill>
void init_in_float(at::Tensor& t, Fill fill) {
  if (t.device().is_meta()) return;
  at::NoGradGuard no_grad;
  at::Tensor tmp = at::empty(t.sizes(), t.options().dtype(at::kFloat));
  fill(tmp);
  t.copy_(tmp);
}

void uniform_(at::Tensor& t, double bound) {
  init_in_float(t, [&](at::Tensor& x) { x.uniform_(-bound, bound); });
}

}  // namespace

void xavier_uniform_(at::Tensor& weight) {
  const double fan_out = static_cast<double>(weight.size(0));
  const double fan_in = static_cast<double>(weight.numel()) / fan_out;
  uniform_(weight, std::sqrt(6.0 / (fan_in + fan_out)));
}

void normal_(at::Tensor& tensor, double std) {
  init_in_float(tensor, [&](at::Tensor& x) { x.normal_(0.0, std); });
}

void zeros_(at::Tensor& tensor) {
  if (tensor.device().is_meta()) return;
  at::NoGradGuard no_grad;
  tensor.zero_();
}

void conv2d_default_init_(Conv2dImpl& conv) {
  const double fan_in = static_cast<double>(conv.weight.numel() / conv.weight.size(0));
  const double bound = 1.0 / std::sqrt(fan_in);
  uniform_(conv.weight, bound);
  uniform_(conv.bias, bound);
}

void linear_xavier_init_(LinearImpl& linear) {
  xavier_uniform_(linear.weight);
  zeros_(linear.bias);
}

}  // namespace lit::dit
