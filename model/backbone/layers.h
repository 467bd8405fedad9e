// The few parameterised layers DiT is built from (Linear, Conv2d, Embedding), plus a container whose
// children are named "0", "1", ... like PyTorch's nn.Sequential / nn.ModuleList, so that parameter names
// match the released checkpoints. Every layer allocates its parameters with the given TensorOptions: a model
// can be built directly in bfloat16, on a GPU, or on the meta device (shapes only, no memory). Parameters
// start uninitialised (at::empty): the model initialises them (DiTImpl::initialize_weights) or a load fills them.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <memory>
#include <string>

namespace lit::dit {

// ---------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------
// y = x W^T + b; weight (out, in), bias (out).
class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) { return at::linear(x, weight, bias); }

  at::Tensor weight, bias;
};
TORCH_MODULE(Linear);

// Conv2d with square kernels; weight (out, in / groups, k, k), bias (out).
class Conv2dImpl : public torch::nn::Module {
 public:
  Conv2dImpl(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding, int64_t groups,
             const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x) { return at::conv2d(x, weight, bias, stride_, padding_, 1, groups_); }

  at::Tensor weight, bias;

 private:
  int64_t stride_, padding_, groups_;
};
TORCH_MODULE(Conv2d);

// A lookup table; weight (rows, dim).
class EmbeddingImpl : public torch::nn::Module {
 public:
  EmbeddingImpl(int64_t rows, int64_t dim, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& ids) { return at::embedding(weight, ids); }

  at::Tensor weight;
};
TORCH_MODULE(Embedding);

// An nn.Sequential / nn.ModuleList stand-in: holds children under their index ("0", "1", ...). Parameter-free
// members of a Sequential (SiLU, GELU) are applied by the owner's forward and leave their index unused, as in
// `t_embedder.mlp.0` / `t_embedder.mlp.2`.
class Indexed : public torch::nn::Module {
 public:
  explicit Indexed(const std::string& type_name = "Sequential") : torch::nn::Module(type_name) {}
  template <typename Holder>
  Holder add(int64_t index, Holder module) {
    return register_module(std::to_string(index), module);
  }
};

// ---------------------------------------------------------------------------------------------------------
// Initialisers: in place, without autograd, for any dtype and device; no-ops on the meta device. Random
// values are drawn in float32 (then converted) from the default generator, so at::manual_seed fixes them.
// ---------------------------------------------------------------------------------------------------------
// U(-a, a), a = sqrt(6 / (fan_in + fan_out)), of the weight viewed as 2-D (size(0), numel / size(0)): for a
// Linear that is torch.nn.init.xavier_uniform_; for a Conv2d it is DiT's "initialise like nn.Linear".
void xavier_uniform_(at::Tensor& weight);
void normal_(at::Tensor& tensor, double std);
void zeros_(at::Tensor& tensor);
// PyTorch's default Conv2d initialisation: kaiming_uniform_(a = sqrt(5)) for the weight and U(-b, b) for the
// bias both reduce to the bound b = 1 / sqrt(fan_in), fan_in = in / groups * k * k.
void conv2d_default_init_(Conv2dImpl& conv);
// xavier_uniform_ weight, zero bias.
void linear_xavier_init_(LinearImpl& linear);

}  // namespace lit::dit
