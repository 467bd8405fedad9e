// The layers of Stable Diffusion's AutoencoderKL, named as diffusers names them so that a state dict loads
// with nothing renamed: ResNet blocks with GroupNorm (eps 1e-6) and SiLU, the single-head self-attention of
// the mid block, stride-2 down-sampling with diffusers' asymmetric padding, nearest x2 up-sampling then a
// convolution, and the encoder and decoder stacks built from them.
//
// Inference only, written as plain structs over ATen ops: each layer holds its tensors and `visit`s them by
// state-dict name (to load, move or list them). Built on the meta device (shapes only, no memory); the
// loader replaces every tensor by the file's.
//
// The decoder's full-resolution path can run tile by tile (model/vae_tiling.h). Its GroupNorm layers then
// take their statistics from a TileNorms context, gathered over the whole image, so that every tile is
// normalised exactly as the whole image would be.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/vae/vae_config.h"

namespace lit::vae {

using ParamVisitor = std::function<void(const std::string& name, at::Tensor& tensor)>;

// ---------------------------------------------------------------------------------------------------------
// GroupNorm statistics for tiled decoding
// ---------------------------------------------------------------------------------------------------------
// One GroupNorm layer's statistics over a whole image: per (sample, group) sums in float64.
struct GroupStats {
  at::Tensor sum, sum_sq;  // (N, G), float64
  double count = 0;        // values per group
};

// How the GroupNorm layers of one tile find their statistics, and what part of the tile is still needed.
// Layers are numbered in the order the decoder meets them. Layers 0 .. given->size() - 1 use the given
// image-wide statistics. At the next layer, with `gather` set, the tile adds its core's sums to *gather and
// the forward pass stops there (throws TileStatsGathered): nothing after that layer can be computed before
// every tile has contributed. Without `gather`, the remaining layers normalise by the tile's own statistics.
struct TileNorms {
  const std::vector<GroupStats>* given = nullptr;
  GroupStats* gather = nullptr;
  // The current activation's extent in latent pixels, in the tile's frame (origin: the tile's top-left
  // corner); an activation's resolution is its height / region_h (1, 2, 4, ... pixels per latent pixel).
  int64_t region_y0 = 0, region_x0 = 0, region_h = 0, region_w = 0;
  int64_t core_y0 = 0, core_y1 = 0, core_x0 = 0, core_x1 = 0;  // the core, in the same frame
  // Between steps, crop the activation to what the rest of the pass reads: the core plus the remaining
  // receptive radius (plus out_margin latent pixels around the core at the output). Most of the work is at
  // full resolution, where little context is left to keep. (Layers that use the tile's own statistics then
  // see a smaller region: they are approximate anyway.)
  bool crop = false;
  double out_margin = 0;
  size_t next = 0;  // the next layer's number
};
struct TileStatsGathered {};

// ---------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------
struct Conv2d {
  Conv2d() = default;
  Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t padding = 0);
  at::Tensor forward(const at::Tensor& x) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  at::Tensor weight, bias;  // (out, in, k, k), (out)
  int64_t stride = 1, padding = 0;
};

struct Linear {
  Linear() = default;
  Linear(int64_t in, int64_t out);
  at::Tensor forward(const at::Tensor& x) const { return at::linear(x, weight, bias); }
  void visit(const std::string& prefix, const ParamVisitor& fn);

  at::Tensor weight, bias;  // (out, in), (out)
};

struct GroupNorm {
  GroupNorm() = default;
  GroupNorm(int64_t groups, int64_t channels);
  // tiles: null for the usual per-tensor statistics.
  at::Tensor forward(const at::Tensor& x, TileNorms* tiles = nullptr) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  at::Tensor weight, bias;  // (C)
  int64_t groups = 32;
  double eps = 1e-6;
};

// norm1 -> SiLU -> conv1 -> norm2 -> SiLU -> conv2, plus the input (through a 1x1 conv_shortcut when the
// channel count changes).
struct ResnetBlock {
  ResnetBlock() = default;
  ResnetBlock(int64_t in, int64_t out, int64_t groups);
  at::Tensor forward(const at::Tensor& x, TileNorms* tiles = nullptr) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  GroupNorm norm1, norm2;
  Conv2d conv1, conv2, conv_shortcut;
  bool has_shortcut = false;
};

// Single-head self-attention over the H*W positions (the mid block's), with a residual connection.
// Queries are processed in chunks so that the attention matrix never exceeds a fixed size: the result is
// the same, and a large latent does not need H*W x H*W floats at once.
struct Attention {
  Attention() = default;
  Attention(int64_t channels, int64_t groups);
  at::Tensor forward(const at::Tensor& x) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  GroupNorm group_norm;
  Linear to_q, to_k, to_v, to_out;  // to_out is diffusers' to_out.0
};

// ResNet, attention (optional), ResNet at the lowest resolution.
struct MidBlock {
  MidBlock() = default;
  MidBlock(int64_t channels, int64_t groups, bool attention);
  at::Tensor forward(const at::Tensor& x) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  ResnetBlock resnet0, resnet1;
  Attention attention;
  bool has_attention = true;
};

// ---------------------------------------------------------------------------------------------------------
// Encoder: image (N, in, H, W) -> moments (N, 2 * latent, H/f, W/f) before quant_conv.
// ---------------------------------------------------------------------------------------------------------
struct Encoder {
  Encoder() = default;
  explicit Encoder(const VaeConfig& config);
  at::Tensor forward(const at::Tensor& image) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  struct DownBlock {
    std::vector<ResnetBlock> resnets;
    Conv2d downsample;  // stride 2 after right/bottom zero padding; absent on the last level
    bool has_downsample = false;
  };
  Conv2d conv_in;
  std::vector<DownBlock> down_blocks;
  MidBlock mid_block;
  GroupNorm conv_norm_out;
  Conv2d conv_out;
};

// ---------------------------------------------------------------------------------------------------------
// Decoder: latent (N, latent, h, w) after post_quant_conv -> image (N, out, h*f, w*f). Split in two so the
// full-resolution part can run tile by tile: forward_latent (conv_in and the mid block, at latent resolution,
// over the whole latent because attention is global) and forward_pixels (up blocks, norm, conv_out).
// ---------------------------------------------------------------------------------------------------------
struct Decoder {
  Decoder() = default;
  explicit Decoder(const VaeConfig& config);
  at::Tensor forward(const at::Tensor& latent) const { return forward_pixels(forward_latent(latent)); }
  at::Tensor forward_latent(const at::Tensor& latent) const;
  at::Tensor forward_pixels(const at::Tensor& hidden, TileNorms* tiles = nullptr) const;
  size_t pixel_norm_layers() const;  // GroupNorm layers in forward_pixels

  // forward_pixels as steps: each ResNet block, each up-sampling, then the output norm and convolution.
  // radius: how far (latent pixels) a step's output reaches into its input; norm_offsets: the same for the
  // input of each GroupNorm in the step.
  struct PixelStep {
    double radius = 0;
    std::vector<double> norm_offsets;
  };
  std::vector<PixelStep> pixel_steps() const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  struct UpBlock {
    std::vector<ResnetBlock> resnets;
    Conv2d upsample;  // after nearest x2; absent on the last level
    bool has_upsample = false;
  };
  Conv2d conv_in;
  MidBlock mid_block;
  std::vector<UpBlock> up_blocks;
  GroupNorm conv_norm_out;
  Conv2d conv_out;
};

}  // namespace lit::vae
