// The pieces of PixArt-Σ that DiT does not have, as the official PixArt_blocks.py writes them:
//   pixart_pos_embed        the 2-D sin-cos table recomputed per token grid (base_size, pe_interpolation)
//   CaptionEmbedder         y_proj (Linear C->D, GELU tanh, Linear D->D) and the learned null caption
//   SizeEmbedder            PixArt-α 1024's micro-conditions (image size, aspect ratio)
//   MultiHeadCrossAttention image tokens attend to their own sample's caption tokens (softmax)
//   PixArtMSBlock           adaLN-single block: self-attention, cross-attention, MLP
//   T2IFinalLayer           modulated by t (not t0) through its scale_shift_table
// Parameter names are the official state dict's.
#pragma once

#include <memory>
#include <optional>

#include "model/backbone/attention.h"
#include "model/backbone/dit.h"
#include "model/backbone/embedders.h"
#include "model/backbone/layers.h"
#include "model/t2i/pixart_config.h"

namespace lit::t2i {

// (h*w, D) float32: PixArt's get_2d_sincos_pos_embed for a grid_h x grid_w token grid. Positions along each axis
// are arange(n) / (n / base_size) / pe_interpolation (float32, so every grid is stretched onto the base grid);
// channels [0, D/2) encode the column (w) coordinate, [D/2, D) the row, each [sin(pos w_k), cos(pos w_k)] with
// w_k = 10000^(-k / (D/4)) in float64. Tokens row-major (h outer).
at::Tensor pixart_pos_embed(int64_t embed_dim, int64_t grid_h, int64_t grid_w, double pe_interpolation,
                            int64_t base_size);

// ---------------------------------------------------------------------------------------------------------
// Caption embedder: y_embedder.y_proj.fc1 (C -> D), GELU tanh, y_proj.fc2 (D -> D); y_embedder.y_embedding
// (model_max_length, C) is the learned null caption (a buffer in the official code, saved in its state dict).
// ---------------------------------------------------------------------------------------------------------
class CaptionEmbedderImpl : public torch::nn::Module {
 public:
  CaptionEmbedderImpl(int64_t caption_channels, int64_t hidden_size, int64_t token_num, double uncond_prob,
                      const at::TensorOptions& options);
  // caption (B, 1, L, C) -> (B, 1, L, D). In training (with uncond_prob > 0), or when force_drop_ids (B,) is
  // given, dropped captions (1 = drop) are replaced by y_embedding; their masks are kept (official behaviour).
  at::Tensor forward(const at::Tensor& caption, bool train, const std::optional<at::Tensor>& force_drop_ids = {});
  at::Tensor token_drop(const at::Tensor& caption, const std::optional<at::Tensor>& force_drop_ids = {}) const;

  dit::Linear fc1{nullptr}, fc2{nullptr};  // y_proj.fc1, y_proj.fc2
  at::Tensor y_embedding;
  double uncond_prob;
};
TORCH_MODULE(CaptionEmbedder);

// ---------------------------------------------------------------------------------------------------------
// Size embedder (csize_embedder / ar_embedder): each of the `dims` values of s (B, dims) goes through the
// timestep embedding (256 frequencies) and mlp.0 (256 -> D/3), SiLU, mlp.2; the results are concatenated.
// ---------------------------------------------------------------------------------------------------------
class SizeEmbedderImpl : public torch::nn::Module {
 public:
  SizeEmbedderImpl(int64_t out_dim, const at::TensorOptions& options);
  // s: (B', dims) or (B',), repeated to `batch` rows when B' divides it. Returns (batch, dims * out_dim).
  at::Tensor forward(const at::Tensor& s, int64_t batch);

  dit::Linear mlp0{nullptr}, mlp2{nullptr};
};
TORCH_MODULE(SizeEmbedder);

// ---------------------------------------------------------------------------------------------------------
// Cross-attention: q_linear (D -> D) on the image tokens, kv_linear (D -> 2D, [k | v]) on the caption tokens,
// softmax over each sample's caption tokens where mask is true, proj (D -> D). The official code concatenates
// the kept tokens of every sample and uses a block-diagonal mask; here padded tokens are zeroed (so nothing
// they hold can leak) and excluded by a boolean attention mask: the same function.
// ---------------------------------------------------------------------------------------------------------
class MultiHeadCrossAttentionImpl : public torch::nn::Module {
 public:
  MultiHeadCrossAttentionImpl(int64_t dim, int64_t num_heads, const at::TensorOptions& options);
  // x (B, N, D), cond (B, L, D), mask (B, L) bool or undefined (every token). Returns (B, N, D).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& cond, const at::Tensor& mask);

  dit::Linear q_linear{nullptr}, kv_linear{nullptr}, proj{nullptr};
  int64_t num_heads;
};
TORCH_MODULE(MultiHeadCrossAttention);

// Optional observer of intermediate activations (tests, debugging): called with a name and the tensor.
using ActivationTrace = std::function<void(const std::string& name, const at::Tensor& value)>;

// ---------------------------------------------------------------------------------------------------------
// PixArtMSBlock: (shift, scale, gate) x 2 = scale_shift_table (6, D) + t0 (B, 6D) viewed (B, 6, D);
//   x += gate_msa * attn(LN(x) (1 + scale_msa) + shift_msa)
//   x += cross_attn(x, y, mask)                       (no norm, no gate)
//   x += gate_mlp * mlp(LN(x) (1 + scale_mlp) + shift_mlp)
// attn is softmax (PixArt) or LiT's linear attention (LiT-T2I), the backbone's SelfAttention modules.
// ---------------------------------------------------------------------------------------------------------
class PixArtMSBlockImpl : public torch::nn::Module {
 public:
  PixArtMSBlockImpl(const PixArtConfig& config, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& y, const at::Tensor& t0, const at::Tensor& mask,
                     int64_t grid_h, int64_t grid_w, const ActivationTrace* trace = nullptr,
                     const std::string& trace_prefix = "");

  at::Tensor scale_shift_table;  // (6, D)
  std::shared_ptr<dit::SelfAttention> attn;
  MultiHeadCrossAttention cross_attn{nullptr};
  dit::Mlp mlp{nullptr};
  int64_t hidden_size;
};
TORCH_MODULE(PixArtMSBlock);

// ---------------------------------------------------------------------------------------------------------
// T2IFinalLayer: shift, scale = scale_shift_table (2, D) + t (B, D); linear(LN(x) (1 + scale) + shift).
// ---------------------------------------------------------------------------------------------------------
class T2IFinalLayerImpl : public torch::nn::Module {
 public:
  T2IFinalLayerImpl(int64_t hidden_size, int64_t patch_size, int64_t out_channels, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& t);

  at::Tensor scale_shift_table;  // (2, D)
  dit::Linear linear{nullptr};
};
TORCH_MODULE(T2IFinalLayer);

}  // namespace lit::t2i
