// DiT, "Scalable Diffusion Models with Transformers" (Peebles & Xie), as facebookresearch/DiT's models.py
// builds it, and LiT (Wang et al.), the same network whose blocks use simplified linear attention.
//
//   x (B, C, H, W) --patchify--> tokens (B, T, D) + fixed sin-cos positions
//   c = t_embedder(t) + y_embedder(y)                                   (B, D), the conditioning
//   depth x DiTBlock(x, c): adaLN-Zero around attention and an MLP
//   FinalLayer(x, c) -> (B, T, p*p*C_out) --unpatchify--> (B, C_out, H, W)
//
// C_out = 2C with learned sigma: the noise prediction then the variance interpolation channels.
// Parameter names and shapes are those of the released checkpoints (blocks.0.attn.qkv.weight,
// y_embedder.embedding_table.weight, final_layer.adaLN_modulation.1.weight, ...).
//
// How the forward runs is explicit: the model carries its execution options (set_execution: attention
// implementation, precision path), and each forward decides once what the call is (kernels::Pass, passed to
// every block and operator): a training pass when autograd records it, an inference pass otherwise;
// activation checkpointing's first forward asks for the training pass by name.
#pragma once

#include <memory>
#include <vector>

#include "kernels/execution.h"
#include "model/backbone/attention.h"
#include "model/backbone/embedders.h"
#include "model/backbone/layers.h"
#include "model/backbone/model_config.h"

namespace lit {
namespace dit {

// ---------------------------------------------------------------------------------------------------------
// MLP: fc1 -> GELU (tanh approximation) -> fc2.
// ---------------------------------------------------------------------------------------------------------
class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t in_features, int64_t hidden_features, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, kernels::Pass pass = kernels::Pass::Inference);

  Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(Mlp);

// ---------------------------------------------------------------------------------------------------------
// DiT block with adaLN-Zero: from c, adaLN_modulation (SiLU, Linear D -> 6D) gives shift, scale and gate for
// the attention then for the MLP; each branch sees LayerNorm(x) * (1 + scale) + shift and is added back
// multiplied by its gate. The gates start at zero, so every block starts as the identity.
// ---------------------------------------------------------------------------------------------------------
class DiTBlockImpl : public torch::nn::Module {
 public:
  DiTBlockImpl(const ModelConfig& config, const at::TensorOptions& options);
  // pass: the kernels' pass (DiTImpl::forward_unchecked, activation checkpointing).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c, int64_t grid_h, int64_t grid_w, kernels::Pass pass);

  std::shared_ptr<SelfAttention> attn;
  Mlp mlp{nullptr};
  Linear adaLN_modulation{nullptr};  // adaLN_modulation.1 (adaLN_modulation.0 is the SiLU)
  int64_t hidden_size;
};
TORCH_MODULE(DiTBlock);

// ---------------------------------------------------------------------------------------------------------
// Final layer: adaLN (shift, scale) on LayerNorm(x), then Linear D -> p*p*C_out.
// ---------------------------------------------------------------------------------------------------------
class FinalLayerImpl : public torch::nn::Module {
 public:
  FinalLayerImpl(int64_t hidden_size, int64_t patch_size, int64_t out_channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& c, kernels::Pass pass = kernels::Pass::Inference);

  Linear linear{nullptr};
  Linear adaLN_modulation{nullptr};  // adaLN_modulation.1
  int64_t hidden_size;
};
TORCH_MODULE(FinalLayer);

// LayerNorm without affine parameters, eps 1e-6 (norm1, norm2, norm_final).
at::Tensor layer_norm(const at::Tensor& x);

}  // namespace dit

// ---------------------------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------------------------
class DiTImpl : public torch::nn::Module {
 public:
  // Builds the network with parameters allocated by options (dtype, device; the meta device gives shapes
  // only). initialize: DiT's initialize_weights (for training from scratch); pass false when the weights
  // will be loaded (they are then uninitialised memory). Throws lit::Error for an invalid config.
  explicit DiTImpl(const ModelConfig& config, const at::TensorOptions& options = at::kFloat, bool initialize = true);

  // x: (B, C, H, W) latents, t: (B,) timesteps (integer or fractional), y: (B,) int64 labels (num_classes is
  // the null class). Labels are dropped at random in training mode (is_training()), as in DiT. Returns
  // (B, C_out, H, W). Inputs are moved to the model's device; x, t are cast to its dtype.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);

  // forward() is check_inputs, then the inputs moved to the model's device (x, t) and dtype (x; y to int64), then
  // forward_unchecked. The split lets a CUDA graph capture the computation alone (model/cuda_graph_forward.h):
  // the checks may synchronise with the host (reading CPU labels), which a capture forbids.
  // check_inputs throws lit::Error for shapes, label dtype or (CPU) label values the model cannot take.
  void check_inputs(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) const;
  // x (B, C, H, W) already in the model's dtype, t (B,) and y (B,) int64, all on the model's device; unchecked.
  at::Tensor forward_unchecked(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y);

  // Classifier-free guidance in one batch, as DiT's forward_with_cfg: the first half of x is duplicated, y
  // is expected to hold the labels for the first half and the null class for the second (t likewise), and
  // the guided prediction uncond + s (cond - uncond) is returned in both halves.
  // Quirk kept from DiT: by default guidance is applied to the first 3 output channels only (DiT's published
  // samples depend on it); the other channels (the 4th latent channel and the variance) come from the
  // conditional and unconditional passes unchanged. all_channels = true guides all in_channels noise channels,
  // the standard form. Models with fewer than 3 noise channels get all of them guided and never a variance
  // channel (DiT's literal slice would reach into those).
  at::Tensor forward_with_cfg(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, double cfg_scale,
                              bool all_channels = false);

  // (B, T, p*p*C_out) -> (B, C_out, H, W).
  at::Tensor unpatchify(const at::Tensor& x) const;

  // DiT's initialize_weights: Xavier-uniform linears (and patch embedding, viewed as a linear), zero biases,
  // N(0, 0.02) label table and timestep MLP weights, zero adaLN modulations and final linear, sin-cos
  // pos_embed. For linear attention the attention's dwc gets PyTorch's default Conv2d initialisation.
  void initialize_weights();
  // Fills pos_embed with the fixed sin-cos table (computed in float64, stored in the model's dtype).
  void reset_pos_embed();

  // Activation checkpointing of every block whenever gradients are recorded (model/activation_checkpoint.h):
  // less memory for a second forward of each block in the backward pass; the results are the same.
  void set_activation_checkpointing(bool on) { checkpointing_ = on; }
  bool activation_checkpointing() const { return checkpointing_; }

  // How the forward runs (kernels/execution.h): the attention implementation and precision path of every
  // block, and the CUDA graphs and exact float32 choices the pipeline reads. Default: ExecutionOptions{}.
  void set_execution(const kernels::ExecutionOptions& options);
  const kernels::ExecutionOptions& execution() const { return execution_; }

  const ModelConfig& config() const { return config_; }
  at::Device device() const { return pos_embed.device(); }
  at::ScalarType dtype() const { return pos_embed.scalar_type(); }
  int64_t num_parameters() const;

  dit::PatchEmbed x_embedder{nullptr};
  dit::TimestepEmbedder t_embedder{nullptr};
  dit::LabelEmbedder y_embedder{nullptr};
  at::Tensor pos_embed;  // (1, T, D), a parameter that does not require grad (fixed)
  std::vector<dit::DiTBlock> blocks;
  dit::FinalLayer final_layer{nullptr};

 private:
  ModelConfig config_;
  bool checkpointing_ = false;
  kernels::ExecutionOptions execution_;
};
// DiT is a shared handle (model->forward(...)); LiT is a DiT whose config says attention: linear.
TORCH_MODULE(DiT);

}  // namespace lit
