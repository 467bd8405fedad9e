#include "model/t2i/pixart.h"

#include <ATen/core/grad_mode.h>

#include <cmath>
#include <sstream>

#include "common/error.h"

namespace lit {
namespace {

std::string shape_of(const at::Tensor& v) {
  std::ostringstream s;
  s << v.sizes();
  return s.str();
}

// In place, without autograd, drawn in float32 from the default generator: randn * scale.
void randn_scaled_(at::Tensor& t, double scale) {
  if (t.device().is_meta()) return;
  at::NoGradGuard no_grad;
  t.copy_(at::randn(t.sizes(), t.options().dtype(at::kFloat)) * scale);
}

}  // namespace

PixArtMSImpl::PixArtMSImpl(const PixArtConfig& config, const at::TensorOptions& options, bool initialize)
    : torch::nn::Module("PixArtMS"), config_(config) {
  config_.validate();
  const PixArtConfig& c = config_;
  const int64_t D = c.hidden_size;
  x_embedder = register_module("x_embedder", dit::PatchEmbed(c.patch_size, c.in_channels, D, options));
  t_embedder = register_module("t_embedder", dit::TimestepEmbedder(D, options));
  t_block = register_module("t_block", std::make_shared<dit::Indexed>())->add(1, dit::Linear(D, 6 * D, options));
  y_embedder = register_module(
      "y_embedder", t2i::CaptionEmbedder(c.caption_channels, D, c.model_max_length, c.class_dropout_prob, options));
  if (c.micro_condition) {
    csize_embedder = register_module("csize_embedder", t2i::SizeEmbedder(D / 3, options));
    ar_embedder = register_module("ar_embedder", t2i::SizeEmbedder(D / 3, options));
  }
  auto block_list = register_module("blocks", std::make_shared<dit::Indexed>("ModuleList"));
  for (int64_t i = 0; i < c.depth; ++i) blocks.push_back(block_list->add(i, t2i::PixArtMSBlock(c, options)));
  final_layer = register_module("final_layer", t2i::T2IFinalLayer(D, c.patch_size, c.out_channels(), options));
  if (initialize) initialize_weights();
}

void PixArtMSImpl::initialize_weights() {
  for (auto& module : modules(/*include_self=*/false))
    if (auto* linear = dynamic_cast<dit::LinearImpl*>(module.get())) dit::linear_xavier_init_(*linear);
  for (auto& block : blocks) block->attn->reset_parameters();
  dit::xavier_uniform_(x_embedder->proj->weight);
  dit::zeros_(x_embedder->proj->bias);
  dit::normal_(t_embedder->mlp0->weight, 0.02);
  dit::normal_(t_embedder->mlp2->weight, 0.02);
  dit::normal_(t_block->weight, 0.02);
  if (config_.micro_condition)
    for (auto* e : {csize_embedder.get(), ar_embedder.get()}) {
      dit::normal_(e->mlp0->weight, 0.02);
      dit::normal_(e->mlp2->weight, 0.02);
    }
  dit::normal_(y_embedder->fc1->weight, 0.02);
  dit::normal_(y_embedder->fc2->weight, 0.02);
  randn_scaled_(y_embedder->y_embedding, 1.0 / std::sqrt(static_cast<double>(config_.caption_channels)));
  const double table_scale = 1.0 / std::sqrt(static_cast<double>(config_.hidden_size));
  for (auto& block : blocks) {
    randn_scaled_(block->scale_shift_table, table_scale);
    dit::zeros_(block->cross_attn->proj->weight);
    dit::zeros_(block->cross_attn->proj->bias);
  }
  randn_scaled_(final_layer->scale_shift_table, table_scale);
  dit::zeros_(final_layer->linear->weight);
  dit::zeros_(final_layer->linear->bias);
}

int64_t PixArtMSImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

at::Tensor PixArtMSImpl::pos_embed(int64_t grid_h, int64_t grid_w) {
  if (!pos_cache_.defined() || pos_h_ != grid_h || pos_w_ != grid_w || pos_cache_.device() != device() ||
      pos_cache_.scalar_type() != dtype()) {
    pos_cache_ = t2i::pixart_pos_embed(config_.hidden_size, grid_h, grid_w, config_.pe_interpolation,
                                       config_.effective_base_size())
                     .unsqueeze(0)
                     .to(device(), dtype());
    pos_h_ = grid_h;
    pos_w_ = grid_w;
  }
  return pos_cache_;
}

at::Tensor PixArtMSImpl::unpatchify(const at::Tensor& x, int64_t h, int64_t w) const {
  const int64_t c = config_.out_channels(), p = config_.patch_size;
  if (x.dim() != 3 || x.size(1) != h * w || x.size(2) != p * p * c)
    throw Error("PixArt unpatchify: expected (B, " + std::to_string(h * w) + ", " + std::to_string(p * p * c) +
                "), got " + shape_of(x));
  // (B, h, w, p, p, c) -> einsum nhwpqc->nchpwq -> (B, c, h*p, w*p)
  return x.reshape({x.size(0), h, w, p, p, c}).permute({0, 5, 1, 3, 2, 4}).reshape({x.size(0), c, h * p, w * p});
}

at::Tensor PixArtMSImpl::forward(const at::Tensor& x_in, const at::Tensor& t_in, const at::Tensor& y_in,
                                 const at::Tensor& mask_in, const std::optional<MicroConditions>& micro) {
  const PixArtConfig& c = config_;
  const int64_t p = c.patch_size;
  if (x_in.dim() != 4 || x_in.size(1) != c.in_channels || x_in.size(2) % p != 0 || x_in.size(3) % p != 0 ||
      x_in.size(2) == 0 || x_in.size(3) == 0)
    throw Error("PixArt forward: x must be (B, " + std::to_string(c.in_channels) +
                ", H, W) with H and W multiples of " + std::to_string(p) + ", got " + shape_of(x_in));
  const int64_t B = x_in.size(0);
  if (t_in.dim() != 1 || t_in.size(0) != B)
    throw Error("PixArt forward: t must be (" + std::to_string(B) + ",), got " + shape_of(t_in));
  at::Tensor y = y_in.dim() == 3 ? y_in.unsqueeze(1) : y_in;  // (B, 1, L, C)
  if (y.dim() != 4 || y.size(0) != B || y.size(1) != 1 || y.size(3) != c.caption_channels || y.size(2) == 0)
    throw Error("PixArt forward: captions must be (" + std::to_string(B) + ", 1, L, " +
                std::to_string(c.caption_channels) + "), got " + shape_of(y_in));
  const int64_t L = y.size(2);
  at::Tensor mask;
  if (mask_in.defined()) {
    // [B', L] or [B', 1, 1, L] -> [B', L] -> repeated to [B, L] (official: mask.repeat(B // B', 1))
    mask = mask_in.dim() == 4 && mask_in.size(1) == 1 && mask_in.size(2) == 1 ? mask_in.flatten(1) : mask_in;
    if (mask.dim() != 2 || mask.size(1) != L || mask.size(0) == 0 || B % mask.size(0) != 0)
      throw Error("PixArt forward: the caption mask must be (B', " + std::to_string(L) + ") or (B', 1, 1, " +
                  std::to_string(L) + ") with B' dividing " + std::to_string(B) + ", got " + shape_of(mask_in));
    mask = mask != 0;
    if (mask.device().is_cpu() && !mask.any(1).all().item<bool>())
      throw Error("PixArt forward: a caption mask has no real token (every caption has at least its eos)");
    if (mask.size(0) != B) mask = mask.repeat({B / mask.size(0), 1});
    mask = mask.to(device());
  }
  if (c.micro_condition && (!micro || !micro->img_hw.defined() || !micro->aspect_ratio.defined()))
    throw Error("PixArt forward: this model (micro_condition) needs the image size and aspect ratio");

  const at::Tensor x0 = x_in.to(device(), dtype());
  const at::Tensor timestep = t_in.to(device(), dtype());
  y = y.to(device(), dtype());
  const int64_t grid_h = x0.size(2) / p, grid_w = x0.size(3) / p;
  const t2i::ActivationTrace* trace = trace_ ? &trace_ : nullptr;

  at::Tensor x = x_embedder(x0);  // (B, h*w, D)
  if (trace) (*trace)("x_embedder_out_before_pos", x);
  x = x + pos_embed(grid_h, grid_w);
  at::Tensor t = t_embedder(timestep);  // (B, D)
  if (trace) (*trace)("t_embedder_out", t);
  if (c.micro_condition) {
    const at::Tensor csize = csize_embedder(micro->img_hw.to(device(), dtype()), B);
    const at::Tensor ar = ar_embedder(micro->aspect_ratio.to(device(), dtype()), B);
    t = t + at::cat({csize, ar}, 1);
  }
  const at::Tensor t0 = t_block(at::silu(t));  // (B, 6D)
  if (trace) (*trace)("t_block_out", t0);
  const at::Tensor y_emb = y_embedder(y, is_training());  // (B, 1, L, D)
  if (trace) (*trace)("y_embedder_out", y_emb);
  const at::Tensor cond = y_emb.squeeze(1);  // (B, L, D)

  for (size_t i = 0; i < blocks.size(); ++i) {
    const std::string prefix = "block" + std::to_string(i) + "_";
    x = blocks[i]->forward(x, cond, t0, mask, grid_h, grid_w, trace, prefix);
    if (trace) (*trace)(prefix + "out", x);
  }
  x = final_layer(x, t);  // (B, h*w, p*p*C_out)
  if (trace) (*trace)("final_layer_out", x);
  return unpatchify(x, grid_h, grid_w);
}

at::Tensor PixArtMSImpl::forward_with_cfg(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                                          double cfg_scale, const at::Tensor& mask,
                                          const std::optional<MicroConditions>& micro) {
  if (x.dim() < 1 || x.size(0) % 2 != 0)
    throw Error("PixArt forward_with_cfg: the batch must have an even size (conditional half, null half)");
  const int64_t half_batch = x.size(0) / 2;
  const at::Tensor half = x.narrow(0, 0, half_batch);
  const at::Tensor out = forward(at::cat({half, half}, 0), t, y, mask, micro);
  const int64_t guided = std::min<int64_t>(3, config_.in_channels);  // eps, rest = out[:, :3], out[:, 3:]
  const at::Tensor eps = out.narrow(1, 0, guided), rest = out.narrow(1, guided, out.size(1) - guided);
  const at::Tensor cond_eps = eps.narrow(0, 0, half_batch), uncond_eps = eps.narrow(0, half_batch, half_batch);
  const at::Tensor half_eps = uncond_eps + cfg_scale * (cond_eps - uncond_eps);
  return at::cat({at::cat({half_eps, half_eps}, 0), rest}, 1);
}

at::Tensor PixArtMSImpl::forward_eps(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                                     const at::Tensor& mask, const std::optional<MicroConditions>& micro) {
  const at::Tensor out = forward(x, t, y, mask, micro);
  return config_.pred_sigma ? out.narrow(1, 0, config_.in_channels) : out;
}

StateDict state_dict(const PixArtMS& model) {
  StateDict sd;
  for (const auto& item : model->named_parameters(/*recurse=*/true)) sd.insert(item.key(), item.value().detach());
  for (const auto& item : model->named_buffers(/*recurse=*/true)) sd.insert(item.key(), item.value().detach());
  return sd;
}

}  // namespace lit
