// PixArt-Σ (and PixArt-α, and LiT-T2I) as the official PixArt-sigma code's PixArtMS computes it:
//
//   x (B, C, H, W) --x_embedder--> (B, h*w, D) + sin-cos positions for the actual h x w grid (pe_interpolation)
//   t = t_embedder(timestep) (+ micro-conditions)      (B, D)
//   t0 = t_block(t) = Linear(SiLU(t)) -> (B, 6D)          adaLN-single, shared by every block
//   y = y_embedder(caption) (B, 1, L, C) -> (B, L, D)     kept tokens: mask != 0
//   depth x PixArtMSBlock(x, y, t0, mask)
//   T2IFinalLayer(x, t) -> unpatchify -> (B, C_out, H, W)  (C_out = 2C with pred_sigma)
//
// LiT-T2I is the same network whose blocks' self-attention is LiT's linear attention (config attention
// "linear"; cross-attention stays softmax), through the backbone's SelfAttention modules and kernels/.
// H and W may differ (multi-aspect); each must be a multiple of patch_size.
#pragma once

#include <optional>
#include <vector>

#include "model/t2i/pixart_blocks.h"
#include "model/t2i/pixart_config.h"
#include "weights/state_dict.h"

namespace lit {

// PixArt-α 1024's micro-conditions: data_info['img_hw'] (B, 2) = (height, width) in pixels and
// data_info['aspect_ratio'] (B, 1) or (B,) = height / width. Rows are repeated when fewer than the batch.
struct MicroConditions {
  at::Tensor img_hw;
  at::Tensor aspect_ratio;
};

class PixArtMSImpl : public torch::nn::Module {
 public:
  // Builds the network in options' dtype and device (meta: shapes only). initialize: the official
  // initialize_weights (for training or benchmarks); false when weights will be loaded.
  explicit PixArtMSImpl(const PixArtConfig& config, const at::TensorOptions& options = at::kFloat,
                        bool initialize = true);

  // x (B, C, H, W); t (B,) model timesteps (may be fractional); y (B, 1, L, C_cap) or (B, L, C_cap) caption
  // features; mask (B', L) or (B', 1, 1, L), nonzero = real token, B' dividing B (repeated whole, as the
  // official `mask.repeat(B // B', 1)`), or undefined (every token). Inputs are cast to the model's dtype
  // (the timesteps too, as the official code does) and moved to its device. Captions are dropped to the
  // null caption at random in training mode. Returns (B, C_out, H, W). Throws lit::Error for bad shapes or a
  // sample without any caption token.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, const at::Tensor& mask = {},
                     const std::optional<MicroConditions>& micro = std::nullopt);

  // forward_with_cfg as the official code: x's first half is duplicated, y holds the conditions then the null
  // captions, mask (usually the conditional half's (B/2, L)) is repeated. THE QUIRK (from DiT): only output
  // channels 0..2 are guided; channel 3 and the variance channels come from each half unguided.
  at::Tensor forward_with_cfg(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, double cfg_scale,
                              const at::Tensor& mask = {}, const std::optional<MicroConditions>& micro = std::nullopt);

  // forward_with_dpmsolver: the eps channels only (the first C of the output with pred_sigma).
  at::Tensor forward_eps(const at::Tensor& x, const at::Tensor& t, const at::Tensor& y, const at::Tensor& mask = {},
                         const std::optional<MicroConditions>& micro = std::nullopt);

  // (B, h*w, p*p*C_out) -> (B, C_out, h*p, w*p).
  at::Tensor unpatchify(const at::Tensor& x, int64_t grid_h, int64_t grid_w) const;

  // The official initialize_weights (Xavier linears, zero biases, N(0, 0.02) timestep / t_block / caption
  // MLPs, zero cross_attn.proj and final linear), scale_shift_tables randn / sqrt(D), y_embedding
  // randn / sqrt(C_cap); linear attention modules get the backbone's reset_parameters().
  void initialize_weights();

  // Intermediate activations (tests): names as the fixture's act_* ("x_embedder_out_before_pos",
  // "t_embedder_out", "t_block_out", "y_embedder_out", "block{i}_attn_out", "block{i}_cross_attn_out",
  // "block{i}_out", "final_layer_out"). Empty: no tracing.
  void set_trace(t2i::ActivationTrace trace) { trace_ = std::move(trace); }

  const PixArtConfig& config() const { return config_; }
  at::Device device() const { return t_block->weight.device(); }
  at::ScalarType dtype() const { return t_block->weight.scalar_type(); }
  int64_t num_parameters() const;

  dit::PatchEmbed x_embedder{nullptr};
  dit::TimestepEmbedder t_embedder{nullptr};
  dit::Linear t_block{nullptr};  // t_block.1 (t_block.0 is the SiLU)
  t2i::CaptionEmbedder y_embedder{nullptr};
  t2i::SizeEmbedder csize_embedder{nullptr}, ar_embedder{nullptr};  // micro_condition only
  std::vector<t2i::PixArtMSBlock> blocks;
  t2i::T2IFinalLayer final_layer{nullptr};

 private:
  at::Tensor pos_embed(int64_t grid_h, int64_t grid_w);  // cached per grid, in the model's dtype and device

  PixArtConfig config_;
  t2i::ActivationTrace trace_;
  at::Tensor pos_cache_;
  int64_t pos_h_ = -1, pos_w_ = -1;
};
TORCH_MODULE(PixArtMS);

// The model's tensors by official state-dict name (parameters and the y_embedding buffer), detached views.
StateDict state_dict(const PixArtMS& model);

}  // namespace lit
