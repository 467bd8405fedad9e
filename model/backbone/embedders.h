// DiT's input embedders: image patches, the fixed 2-D sin-cos position table, diffusion timesteps and class
// labels (with the null class that classifier-free guidance needs).
#pragma once

#include <optional>

#include "model/backbone/layers.h"

namespace lit::dit {

// ---------------------------------------------------------------------------------------------------------
// Patch embedding: a Conv2d with kernel = stride = p, (B, C, H, W) -> (B, T, D), T = (H/p)(W/p), row-major.
// ---------------------------------------------------------------------------------------------------------
class PatchEmbedImpl : public torch::nn::Module {
 public:
  PatchEmbedImpl(int64_t patch_size, int64_t in_channels, int64_t hidden_size, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);

  Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

// ---------------------------------------------------------------------------------------------------------
// Fixed 2-D sin-cos position embedding (MAE's get_2d_sincos_pos_embed), float64, (G*G, D).
// Token n = i*G + j (row i, column j) gets [sin(j w), cos(j w), sin(i w), cos(i w)] with the D/4 frequencies
// w_k = 10000^(-k / (D/4)): as in MAE's code, the first half of the channels encodes the column (its grid[0]
// comes first from meshgrid(w, h)), the second half the row.
// ---------------------------------------------------------------------------------------------------------
at::Tensor sincos_pos_embed_2d(int64_t embed_dim, int64_t grid_size);

// ---------------------------------------------------------------------------------------------------------
// Timestep embedding: sinusoidal features (GLIDE's timestep_embedding), then Linear-SiLU-Linear.
// ---------------------------------------------------------------------------------------------------------
// (B,) timesteps (may be fractional) -> (B, dim) float32 [cos(t f_k), sin(t f_k)], f_k = max_period^(-k/half),
// k < half = dim/2, computed in float32 as DiT does; an odd dim gets a zero last column.
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, double max_period = 10000);
// The same with the (dim/2,) float32 frequencies f_k given, on t's device (timestep_frequencies on the CPU).
at::Tensor timestep_embedding(const at::Tensor& t, int64_t dim, const at::Tensor& freqs);
at::Tensor timestep_frequencies(int64_t dim, double max_period = 10000);

class TimestepEmbedderImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kFrequencyEmbeddingSize = 256;

  TimestepEmbedderImpl(int64_t hidden_size, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& t);  // (B,) -> (B, D)

  Linear mlp0{nullptr}, mlp2{nullptr};  // mlp.0 and mlp.2 (mlp.1 is the SiLU)

 private:
  // The frequencies, computed on the CPU (the same values on every device) and kept on the device of the last
  // call: a forward then makes no host-to-device copy, which a CUDA graph capture forbids.
  at::Tensor freqs_;
};
TORCH_MODULE(TimestepEmbedder);

// ---------------------------------------------------------------------------------------------------------
// Label embedding. With dropout_prob > 0 the table has one extra row, the null class (index num_classes), that
// the model learns as "no label"; training replaces labels by it with probability dropout_prob, sampling with
// guidance asks for it explicitly.
// ---------------------------------------------------------------------------------------------------------
class LabelEmbedderImpl : public torch::nn::Module {
 public:
  LabelEmbedderImpl(int64_t num_classes, int64_t hidden_size, double dropout_prob, const at::TensorOptions& options);

  // Labels where drop is true become the null class. drop_ids: (B,) with 1 = drop; without it, each label is
  // dropped with probability dropout_prob (default generator).
  at::Tensor token_drop(const at::Tensor& labels, const std::optional<at::Tensor>& force_drop_ids = {}) const;
  // (B,) int64 -> (B, D). Drops labels when training (and dropout_prob > 0) or when force_drop_ids is given.
  at::Tensor forward(const at::Tensor& labels, bool train, const std::optional<at::Tensor>& force_drop_ids = {});

  Embedding embedding_table{nullptr};
  int64_t num_classes;
  double dropout_prob;
};
TORCH_MODULE(LabelEmbedder);

}  // namespace lit::dit
