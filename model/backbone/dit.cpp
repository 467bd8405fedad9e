#include "model/backbone/dit.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <sstream>

#include "common/error.h"
#include "common/format.h"
#include "kernels/adaln.h"
#include "kernels/linear_gelu.h"
#include "model/backbone/activation_checkpoint.h"

namespace lit {
namespace dit {

at::Tensor layer_norm(const at::Tensor& x) {
  return at::layer_norm(x, {x.size(-1)}, {}, {}, 1e-6);
}

namespace {

// x + gate * y, gate (B, D) over the tokens of y (B, N, D): one fused kernel (addcmul) on the half-precision
// inference path, the two operations of DiT's code everywhere else (float32 keeps its exact rounding).
at::Tensor add_gated(const at::Tensor& x, const at::Tensor& gate, const at::Tensor& y, kernels::Pass pass) {
  if (kernels::half_precision_cuda_inference(x, pass)) return at::addcmul(x, gate.unsqueeze(1), y);
  return x + gate.unsqueeze(1) * y;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// MLP
// ---------------------------------------------------------------------------------------------------------
MlpImpl::MlpImpl(int64_t in_features, int64_t hidden_features, const at::TensorOptions& options)
    : torch::nn::Module("Mlp") {
  fc1 = register_module("fc1", Linear(in_features, hidden_features, options));
  fc2 = register_module("fc2", Linear(hidden_features, in_features, options));
}

at::Tensor MlpImpl::forward(const at::Tensor& x, kernels::Pass pass) {
  // fc1 and the tanh GELU are one cuBLASLt call on the half-precision inference path (kernels/linear_gelu.h).
  return fc2(kernels::linear_gelu_tanh(x, fc1->weight, fc1->bias, pass));
}

// ---------------------------------------------------------------------------------------------------------
// DiT block
// ---------------------------------------------------------------------------------------------------------
DiTBlockImpl::DiTBlockImpl(const ModelConfig& config, const at::TensorOptions& options)
    : torch::nn::Module("DiTBlock"), hidden_size(config.hidden_size) {
  const int64_t D = config.hidden_size;
  // norm1 and norm2 have no parameters (LayerNorm without affine): see layer_norm().
  if (config.is_linear())
    attn = register_module("attn", std::make_shared<LinearAttention>(D, config.num_heads, config.dwc_kernel, options));
  else
    attn = register_module("attn", std::make_shared<SoftmaxAttention>(D, config.num_heads, options));
  mlp = register_module("mlp", Mlp(D, config.mlp_hidden_size(), options));
  adaLN_modulation =
      register_module("adaLN_modulation", std::make_shared<Indexed>())->add(1, Linear(D, 6 * D, options));
}

at::Tensor DiTBlockImpl::forward(const at::Tensor& x, const at::Tensor& c, int64_t grid_h, int64_t grid_w,
                                 kernels::Pass pass) {
  const auto m = adaLN_modulation(at::silu(c)).chunk(6, /*dim=*/1);
  const at::Tensor &shift_msa = m[0], &scale_msa = m[1], &gate_msa = m[2];
  const at::Tensor &shift_mlp = m[3], &scale_mlp = m[4], &gate_mlp = m[5];
  at::Tensor h =
      add_gated(x, gate_msa,
                attn->forward(kernels::layer_norm_modulate(x, shift_msa, scale_msa, pass), grid_h, grid_w, pass), pass);
  return add_gated(h, gate_mlp, mlp->forward(kernels::layer_norm_modulate(h, shift_mlp, scale_mlp, pass), pass), pass);
}

// ---------------------------------------------------------------------------------------------------------
// Final layer
// ---------------------------------------------------------------------------------------------------------
FinalLayerImpl::FinalLayerImpl(int64_t hidden_size, int64_t patch_size, int64_t out_channels,
                               const at::TensorOptions& options)
    : torch::nn::Module("FinalLayer"), hidden_size(hidden_size) {
  // norm_final: LayerNorm without affine parameters.
  linear = register_module("linear", Linear(hidden_size, patch_size * patch_size * out_channels, options));
  adaLN_modulation = register_module("adaLN_modulation", std::make_shared<Indexed>())
                         ->add(1, Linear(hidden_size, 2 * hidden_size, options));
}

at::Tensor FinalLayerImpl::forward(const at::Tensor& x, const at::Tensor& c, kernels::Pass pass) {
  const auto m = adaLN_modulation(at::silu(c)).chunk(2, /*dim=*/1);
  const at::Tensor &shift = m[0], &scale = m[1];
  return linear(kernels::layer_norm_modulate(x, shift, scale, pass));
}

}  // namespace dit

// ---------------------------------------------------------------------------------------------------------
// DiT
// ---------------------------------------------------------------------------------------------------------
DiTImpl::DiTImpl(const ModelConfig& config, const at::TensorOptions& options, bool initialize)
    : torch::nn::Module("DiT"), config_(config) {
  config_.validate();
  const ModelConfig& c = config_;
  x_embedder = register_module("x_embedder", dit::PatchEmbed(c.patch_size, c.in_channels, c.hidden_size, options));
  t_embedder = register_module("t_embedder", dit::TimestepEmbedder(c.hidden_size, options));
  y_embedder =
      register_module("y_embedder", dit::LabelEmbedder(c.num_classes, c.hidden_size, c.class_dropout_prob, options));
  // Fixed sin-cos embedding, kept as a parameter (requires_grad false) as DiT does, so it is in the state dict.
  pos_embed = register_parameter("pos_embed", at::empty({1, c.num_patches(), c.hidden_size}, options),
                                 /*requires_grad=*/false);
  auto block_list = register_module("blocks", std::make_shared<dit::Indexed>("ModuleList"));
  for (int64_t i = 0; i < c.depth; ++i) blocks.push_back(block_list->add(i, dit::DiTBlock(c, options)));
  final_layer = register_module("final_layer", dit::FinalLayer(c.hidden_size, c.patch_size, c.out_channels(), options));
  if (initialize) initialize_weights();
}

void DiTImpl::initialize_weights() {
  // Transformer layers: every Linear Xavier-uniform with a zero bias (then some are overwritten below).
  for (auto& module : modules(/*include_self=*/false))
    if (auto* linear = dynamic_cast<dit::LinearImpl*>(module.get())) dit::linear_xavier_init_(*linear);
  // Attention: the same Xavier / zero init for its linears (drawn again), PyTorch's default for LiT's dwc.
  for (auto& block : blocks) block->attn->reset_parameters();

  reset_pos_embed();

  // Patch embedding initialised like a Linear (weight viewed as (D, C*p*p)) instead of a Conv2d.
  dit::xavier_uniform_(x_embedder->proj->weight);
  dit::zeros_(x_embedder->proj->bias);

  // Label embedding table and timestep MLP.
  dit::normal_(y_embedder->embedding_table->weight, 0.02);
  dit::normal_(t_embedder->mlp0->weight, 0.02);
  dit::normal_(t_embedder->mlp2->weight, 0.02);

  // adaLN-Zero: zero modulations make every block the identity at the start.
  for (auto& block : blocks) {
    dit::zeros_(block->adaLN_modulation->weight);
    dit::zeros_(block->adaLN_modulation->bias);
  }
  // Zero output layer: the model starts by predicting zeros.
  dit::zeros_(final_layer->adaLN_modulation->weight);
  dit::zeros_(final_layer->adaLN_modulation->bias);
  dit::zeros_(final_layer->linear->weight);
  dit::zeros_(final_layer->linear->bias);
}

void DiTImpl::reset_pos_embed() {
  if (pos_embed.device().is_meta()) return;
  at::NoGradGuard no_grad;
  const at::Tensor table = dit::sincos_pos_embed_2d(config_.hidden_size, config_.grid_size());  // float64
  pos_embed.copy_(table.to(at::kFloat).unsqueeze(0));  // float64 -> float32 as DiT, then the model's dtype
}

void DiTImpl::set_execution(const kernels::ExecutionOptions& options) {
  execution_ = options;
  dit::set_execution(*this, options);
}

int64_t DiTImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

void DiTImpl::check_inputs(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) const {
  const ModelConfig& c = config_;
  auto shape = [](const at::Tensor& v) { return shape_string(v.sizes()); };
  if (x.dim() != 4 || x.size(1) != c.in_channels || x.size(2) != c.input_size || x.size(3) != c.input_size)
    throw Error("DiT forward: x must be (B, " + std::to_string(c.in_channels) + ", " + std::to_string(c.input_size) +
                ", " + std::to_string(c.input_size) + "), got " + shape(x));
  if (t.dim() != 1 || t.size(0) != x.size(0))
    throw Error("DiT forward: t must be (" + std::to_string(x.size(0)) + ",), got " + shape(t));
  if (y.dim() != 1 || y.size(0) != x.size(0))
    throw Error("DiT forward: y must be (" + std::to_string(x.size(0)) + ",), got " + shape(y));
  if (at::isFloatingType(y.scalar_type()) || y.scalar_type() == at::kBool)
    throw Error("DiT forward: y must hold integer labels, got " + std::string(c10::toString(y.scalar_type())));
  // An out-of-range label would be a device-side assert on a GPU; check where it is cheap (CPU labels).
  if (y.device().is_cpu() && y.numel() > 0) {
    const int64_t lo = y.min().item<int64_t>(), hi = y.max().item<int64_t>();
    if (lo < 0 || hi >= c.label_table_rows())
      throw Error("DiT forward: labels must be in [0, " + std::to_string(c.label_table_rows() - 1) + "]" +
                  (c.has_null_class() ? " (" + std::to_string(c.num_classes) + " is the null class)" : "") + ", got " +
                  std::to_string(lo < 0 ? lo : hi));
  }
}

at::Tensor DiTImpl::forward(const at::Tensor& x_in, const at::Tensor& t_in, const at::Tensor& y_in) {
  check_inputs(x_in, t_in, y_in);
  return forward_unchecked(x_in.to(device(), dtype()), t_in.to(device()), y_in.to(device(), at::kLong));
}

at::Tensor DiTImpl::forward_unchecked(const at::Tensor& x0, const at::Tensor& t0, const at::Tensor& y0) {
  const int64_t grid = config_.grid_size();

  at::Tensor x = x_embedder(x0) + pos_embed;           // (B, T, D), T = H * W / p^2
  const at::Tensor t = t_embedder(t0);                 // (B, D)
  const at::Tensor y = y_embedder(y0, is_training());  // (B, D)
  const at::Tensor c = t + y;                          // (B, D)
  // What this call is (a training pass when autograd records it); on the plain precision path the kernels
  // take the training path's operators for inference too.
  const kernels::Pass call = dit::call_pass(*this);
  const kernels::Pass pass = execution_.precision == kernels::PrecisionPath::Plain ? kernels::Pass::Training : call;
  const bool checkpoint = checkpointing_ && at::GradMode::is_enabled();
  for (auto& block : blocks)  // (B, T, D); checkpointed blocks run as a training pass (activation_checkpoint.h)
    x = checkpoint ? checkpointed_block(*block, x, c, grid, grid) : block->forward(x, c, grid, grid, pass);
  x = final_layer->forward(x, c, pass);  // (B, T, p^2 * C_out)
  return unpatchify(x);                  // (B, C_out, H, W)
}

at::Tensor DiTImpl::unpatchify(const at::Tensor& x) const {
  const int64_t c = config_.out_channels(), p = config_.patch_size, h = config_.grid_size(), w = h;
  if (x.dim() != 3 || x.size(1) != h * w || x.size(2) != p * p * c)
    throw Error("unpatchify: expected (B, " + std::to_string(h * w) + ", " + std::to_string(p * p * c) + ")");
  // (B, h, w, p, p, c) -> (B, c, h, p, w, p) -> (B, c, h*p, w*p)
  return x.reshape({x.size(0), h, w, p, p, c}).permute({0, 5, 1, 3, 2, 4}).reshape({x.size(0), c, h * p, w * p});
}

at::Tensor DiTImpl::forward_with_cfg(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, double cfg_scale,
                                     bool all_channels) {
  if (x.dim() < 1 || x.size(0) % 2 != 0)
    throw Error("DiT forward_with_cfg: the batch must have an even size (conditional half, unconditional half)");
  const int64_t half_batch = x.size(0) / 2;
  const at::Tensor half = x.narrow(0, 0, half_batch);
  const at::Tensor model_out = forward(at::cat({half, half}, 0), t, y);
  // THE QUIRK: by default DiT guides only the first 3 channels, and its published samples were made so.
  // The standard form guides all the noise channels (in_channels). Only noise channels are ever guided:
  // for a model with fewer than 3 (e.g. 1-channel pixel models) DiT's literal slice would reach into the
  // variance channels, so we stop at in_channels (as sampler/guidance.h does).
  const int64_t guided = all_channels ? config_.in_channels : std::min<int64_t>(3, config_.in_channels);
  const at::Tensor eps = model_out.narrow(1, 0, guided);
  const at::Tensor rest = model_out.narrow(1, guided, model_out.size(1) - guided);
  const at::Tensor cond_eps = eps.narrow(0, 0, half_batch), uncond_eps = eps.narrow(0, half_batch, half_batch);
  const at::Tensor half_eps = uncond_eps + cfg_scale * (cond_eps - uncond_eps);
  return at::cat({at::cat({half_eps, half_eps}, 0), rest}, 1);
}

}  // namespace lit
