#include "model/vae/vae_blocks.h"

#include <algorithm>
#include <cmath>

#include "kernels/runtime/torch_compat.h"

namespace lit::vae {
namespace {

at::Tensor meta(at::IntArrayRef shape) {
  return at::empty(shape, at::TensorOptions().device(at::kMeta));
}

// SiLU in place, on a tensor the caller has just created and owns alone.
at::Tensor silu_inplace(at::Tensor x) {
  at::silu_(x);
  return x;
}

// The largest attention matrix (batch x queries x keys) computed at once: 2^22 elements, 16 MiB in float32.
// Large enough that each chunk is an efficient matrix product, small beside the activations.
constexpr int64_t kMaxAttentionElements = int64_t{1} << 22;

// Adds the tile's core (scaled to x's resolution) to the running per-group sums of one layer.
void gather_stats(const at::Tensor& x, int64_t groups, const TileNorms& t, GroupStats& stats) {
  const int64_t scale = x.size(2) / t.region_h;
  const at::Tensor core = x.slice(2, (t.core_y0 - t.region_y0) * scale, (t.core_y1 - t.region_y0) * scale)
                              .slice(3, (t.core_x0 - t.region_x0) * scale, (t.core_x1 - t.region_x0) * scale)
                              .reshape({x.size(0), groups, -1});
  // Sums accumulated in float64 (values and squares stay float32: a full float64 copy of a full-resolution
  // tile would double the pass's memory traffic for no measurable gain).
  at::Tensor sum = core.sum(-1, false, at::kDouble), sum_sq = core.square().sum(-1, false, at::kDouble);
  if (!stats.sum.defined()) {
    stats.sum = at::zeros_like(sum);
    stats.sum_sq = at::zeros_like(sum_sq);
  }
  stats.sum.add_(sum);
  stats.sum_sq.add_(sum_sq);
  stats.count += static_cast<double>(core.size(-1));
}

// GroupNorm with statistics given from outside (the whole image's) instead of x's own, folded into one
// scale and shift per channel so that the full-resolution tensor is read and written once.
at::Tensor normalise_with(const at::Tensor& x, const GroupNorm& norm, const GroupStats& stats) {
  const int64_t n = x.size(0), c = x.size(1);
  const at::Tensor mean = stats.sum / stats.count;
  const at::Tensor var = (stats.sum_sq / stats.count - mean.square()).clamp_min(0);
  const at::Tensor rstd = (var + norm.eps).rsqrt();  // (N, G), float64
  const int64_t per_group = c / norm.groups;
  const at::Tensor weight = norm.weight.to(at::kDouble).view({1, c});
  const at::Tensor scale = rstd.repeat_interleave(per_group, 1) * weight;  // (N, C)
  const at::Tensor shift = norm.bias.to(at::kDouble).view({1, c}) - mean.repeat_interleave(per_group, 1) * scale;
  return at::addcmul(shift.to(x.scalar_type()).view({n, c, 1, 1}), x, scale.to(x.scalar_type()).view({n, c, 1, 1}));
}

// Crops x (the input of step `step`) to the part of the tile the rest of the pass reads.
at::Tensor crop_to_need(const at::Tensor& x, TileNorms& t, const std::vector<Decoder::PixelStep>& steps, size_t step) {
  double reach = 0;
  if (t.gather) {
    // Up to the input of the layer whose statistics this pass gathers.
    const size_t target = t.given ? t.given->size() : 0;
    size_t norm = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
      bool found = false;
      for (double offset : steps[i].norm_offsets) {
        if (norm++ == target) {
          if (i >= step) reach += offset;
          found = true;
          break;
        }
      }
      if (found) break;
      if (i >= step) reach += steps[i].radius;
    }
  } else {
    reach = t.out_margin;
    for (size_t i = step; i < steps.size(); ++i) reach += steps[i].radius;
  }
  const auto margin = static_cast<int64_t>(std::ceil(reach - 1e-9));
  const int64_t y0 = std::max(t.region_y0, t.core_y0 - margin),
                y1 = std::min(t.region_y0 + t.region_h, t.core_y1 + margin);
  const int64_t x0 = std::max(t.region_x0, t.core_x0 - margin),
                x1 = std::min(t.region_x0 + t.region_w, t.core_x1 + margin);
  if (y0 == t.region_y0 && x0 == t.region_x0 && y1 - y0 == t.region_h && x1 - x0 == t.region_w) return x;
  const int64_t scale = x.size(2) / t.region_h;
  at::Tensor cropped = x.slice(2, (y0 - t.region_y0) * scale, (y1 - t.region_y0) * scale)
                           .slice(3, (x0 - t.region_x0) * scale, (x1 - t.region_x0) * scale);
  t.region_y0 = y0;
  t.region_x0 = x0;
  t.region_h = y1 - y0;
  t.region_w = x1 - x0;
  return cropped;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------------------------
Conv2d::Conv2d(int64_t in, int64_t out, int64_t kernel, int64_t stride_, int64_t padding_)
    : weight(meta({out, in, kernel, kernel})), bias(meta({out})), stride(stride_), padding(padding_) {}

at::Tensor Conv2d::forward(const at::Tensor& x) const {
  return at::conv2d(x, weight, bias, stride, padding);
}

void Conv2d::visit(const std::string& prefix, const ParamVisitor& fn) {
  fn(prefix + ".weight", weight);
  fn(prefix + ".bias", bias);
}

Linear::Linear(int64_t in, int64_t out) : weight(meta({out, in})), bias(meta({out})) {}

void Linear::visit(const std::string& prefix, const ParamVisitor& fn) {
  fn(prefix + ".weight", weight);
  fn(prefix + ".bias", bias);
}

GroupNorm::GroupNorm(int64_t groups_, int64_t channels)
    : weight(meta({channels})), bias(meta({channels})), groups(groups_) {}

at::Tensor GroupNorm::forward(const at::Tensor& x, TileNorms* tiles) const {
  if (!tiles) return at::group_norm(x, groups, weight, bias, eps);
  const size_t layer = tiles->next++;
  if (tiles->given && layer < tiles->given->size()) return normalise_with(x, *this, (*tiles->given)[layer]);
  if (tiles->gather) {
    gather_stats(x, groups, *tiles, *tiles->gather);
    throw TileStatsGathered{};
  }
  return at::group_norm(x, groups, weight, bias, eps);
}

void GroupNorm::visit(const std::string& prefix, const ParamVisitor& fn) {
  fn(prefix + ".weight", weight);
  fn(prefix + ".bias", bias);
}

ResnetBlock::ResnetBlock(int64_t in, int64_t out, int64_t groups)
    : norm1(groups, in),
      norm2(groups, out),
      conv1(in, out, 3, 1, 1),
      conv2(out, out, 3, 1, 1),
      has_shortcut(in != out) {
  if (has_shortcut) conv_shortcut = Conv2d(in, out, 1);
}

at::Tensor ResnetBlock::forward(const at::Tensor& x, TileNorms* tiles) const {
  // In-place SiLU and residual add on tensors this block created: half the peak memory of the obvious code,
  // the same numbers.
  at::Tensor h = conv1.forward(silu_inplace(norm1.forward(x, tiles)));
  h = conv2.forward(silu_inplace(norm2.forward(h, tiles)));
  return h.add_(has_shortcut ? conv_shortcut.forward(x) : x);
}

void ResnetBlock::visit(const std::string& prefix, const ParamVisitor& fn) {
  norm1.visit(prefix + ".norm1", fn);
  conv1.visit(prefix + ".conv1", fn);
  norm2.visit(prefix + ".norm2", fn);
  conv2.visit(prefix + ".conv2", fn);
  if (has_shortcut) conv_shortcut.visit(prefix + ".conv_shortcut", fn);
}

Attention::Attention(int64_t channels, int64_t groups)
    : group_norm(groups, channels),
      to_q(channels, channels),
      to_k(channels, channels),
      to_v(channels, channels),
      to_out(channels, channels) {}

at::Tensor Attention::forward(const at::Tensor& x) const {
  const int64_t n = x.size(0), c = x.size(1), tokens = x.size(2) * x.size(3);
  // (N, C, H, W) -> (N, 1 head, H*W tokens, C): one head as wide as the channels.
  const at::Tensor h = group_norm.forward(x).reshape({n, c, tokens}).transpose(1, 2);
  const at::Tensor q = to_q.forward(h).unsqueeze(1), k = to_k.forward(h).unsqueeze(1), v = to_v.forward(h).unsqueeze(1);
  const int64_t chunk = std::max<int64_t>(1, kMaxAttentionElements / std::max<int64_t>(1, n * tokens));
  at::Tensor out;
  if (chunk >= tokens) {
    out = compat::scaled_dot_product_attention(q, k, v);
  } else {
    std::vector<at::Tensor> parts;
    for (int64_t i = 0; i < tokens; i += chunk)
      parts.push_back(compat::scaled_dot_product_attention(q.slice(2, i, std::min(tokens, i + chunk)), k, v));
    out = at::cat(parts, 2);
  }
  out = to_out.forward(out.squeeze(1));  // (N, tokens, C)
  return out.transpose(1, 2).reshape(x.sizes()).add_(x);
}

void Attention::visit(const std::string& prefix, const ParamVisitor& fn) {
  group_norm.visit(prefix + ".group_norm", fn);
  to_q.visit(prefix + ".to_q", fn);
  to_k.visit(prefix + ".to_k", fn);
  to_v.visit(prefix + ".to_v", fn);
  to_out.visit(prefix + ".to_out.0", fn);
}

MidBlock::MidBlock(int64_t channels, int64_t groups, bool attention_)
    : resnet0(channels, channels, groups), resnet1(channels, channels, groups), has_attention(attention_) {
  if (has_attention) attention = Attention(channels, groups);
}

at::Tensor MidBlock::forward(const at::Tensor& x) const {
  at::Tensor h = resnet0.forward(x);
  if (has_attention) h = attention.forward(h);
  return resnet1.forward(h);
}

void MidBlock::visit(const std::string& prefix, const ParamVisitor& fn) {
  resnet0.visit(prefix + ".resnets.0", fn);
  if (has_attention) attention.visit(prefix + ".attentions.0", fn);
  resnet1.visit(prefix + ".resnets.1", fn);
}

// ---------------------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------------------
Encoder::Encoder(const VaeConfig& config) {
  const auto& ch = config.block_out_channels;
  const int64_t groups = config.norm_num_groups;
  conv_in = Conv2d(config.in_channels, ch[0], 3, 1, 1);
  int64_t in = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    DownBlock block;
    for (int64_t j = 0; j < config.layers_per_block; ++j)
      block.resnets.emplace_back(j == 0 ? in : ch[i], ch[i], groups);
    block.has_downsample = i + 1 < ch.size();
    if (block.has_downsample) block.downsample = Conv2d(ch[i], ch[i], 3, 2, 0);
    down_blocks.push_back(std::move(block));
    in = ch[i];
  }
  mid_block = MidBlock(ch.back(), groups, config.mid_block_add_attention);
  conv_norm_out = GroupNorm(groups, ch.back());
  conv_out = Conv2d(ch.back(), 2 * config.latent_channels, 3, 1, 1);
}

at::Tensor Encoder::forward(const at::Tensor& image) const {
  at::Tensor h = conv_in.forward(image);
  for (const auto& block : down_blocks) {
    for (const auto& resnet : block.resnets) h = resnet.forward(h);
    // diffusers pads one zero column on the right and one row at the bottom, then convolves with stride 2
    // and no padding: an even-sized input halves exactly.
    if (block.has_downsample) h = block.downsample.forward(at::constant_pad_nd(h, {0, 1, 0, 1}, 0));
  }
  h = mid_block.forward(h);
  return conv_out.forward(silu_inplace(conv_norm_out.forward(h)));
}

void Encoder::visit(const std::string& prefix, const ParamVisitor& fn) {
  conv_in.visit(prefix + ".conv_in", fn);
  for (size_t i = 0; i < down_blocks.size(); ++i) {
    const std::string p = prefix + ".down_blocks." + std::to_string(i);
    for (size_t j = 0; j < down_blocks[i].resnets.size(); ++j)
      down_blocks[i].resnets[j].visit(p + ".resnets." + std::to_string(j), fn);
    if (down_blocks[i].has_downsample) down_blocks[i].downsample.visit(p + ".downsamplers.0.conv", fn);
  }
  mid_block.visit(prefix + ".mid_block", fn);
  conv_norm_out.visit(prefix + ".conv_norm_out", fn);
  conv_out.visit(prefix + ".conv_out", fn);
}

// ---------------------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------------------
Decoder::Decoder(const VaeConfig& config) {
  std::vector<int64_t> ch(config.block_out_channels.rbegin(), config.block_out_channels.rend());
  const int64_t groups = config.norm_num_groups;
  conv_in = Conv2d(config.latent_channels, ch[0], 3, 1, 1);
  mid_block = MidBlock(ch[0], groups, config.mid_block_add_attention);
  int64_t in = ch[0];
  for (size_t i = 0; i < ch.size(); ++i) {
    UpBlock block;
    for (int64_t j = 0; j <= config.layers_per_block; ++j)
      block.resnets.emplace_back(j == 0 ? in : ch[i], ch[i], groups);
    block.has_upsample = i + 1 < ch.size();
    if (block.has_upsample) block.upsample = Conv2d(ch[i], ch[i], 3, 1, 1);
    up_blocks.push_back(std::move(block));
    in = ch[i];
  }
  conv_norm_out = GroupNorm(groups, ch.back());
  conv_out = Conv2d(ch.back(), config.out_channels, 3, 1, 1);
}

at::Tensor Decoder::forward_latent(const at::Tensor& latent) const {
  return mid_block.forward(conv_in.forward(latent));
}

at::Tensor Decoder::forward_pixels(const at::Tensor& hidden, TileNorms* tiles) const {
  const bool cropping = tiles && tiles->crop;
  const std::vector<PixelStep> steps = cropping ? pixel_steps() : std::vector<PixelStep>{};
  size_t step = 0;
  const auto crop = [&](const at::Tensor& x) { return cropping ? crop_to_need(x, *tiles, steps, step++) : x; };
  at::Tensor h = hidden;
  for (const auto& block : up_blocks) {
    for (const auto& resnet : block.resnets) h = resnet.forward(crop(h), tiles);
    if (block.has_upsample) {
      h = crop(h);
      h = at::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2});
      h = block.upsample.forward(h);
    }
  }
  h = crop(h);
  return conv_out.forward(silu_inplace(conv_norm_out.forward(h, tiles)));
}

std::vector<Decoder::PixelStep> Decoder::pixel_steps() const {
  // Each 3x3 convolution reaches one pixel of its own resolution, 1 / scale latent pixels. Nearest
  // up-sampling rounds to the coarser grid, which can cost one more coarse pixel.
  std::vector<PixelStep> steps;
  double scale = 1;
  for (const auto& block : up_blocks) {
    for (size_t i = 0; i < block.resnets.size(); ++i) steps.push_back({2 / scale, {0, 1 / scale}});
    if (block.has_upsample) {
      steps.push_back({1 / scale + 1 / (2 * scale), {}});
      scale *= 2;
    }
  }
  steps.push_back({1 / scale, {0}});  // conv_norm_out, conv_out
  return steps;
}

size_t Decoder::pixel_norm_layers() const {
  size_t layers = 1;  // conv_norm_out
  for (const auto& block : up_blocks) layers += 2 * block.resnets.size();
  return layers;
}

void Decoder::visit(const std::string& prefix, const ParamVisitor& fn) {
  conv_in.visit(prefix + ".conv_in", fn);
  mid_block.visit(prefix + ".mid_block", fn);
  for (size_t i = 0; i < up_blocks.size(); ++i) {
    const std::string p = prefix + ".up_blocks." + std::to_string(i);
    for (size_t j = 0; j < up_blocks[i].resnets.size(); ++j)
      up_blocks[i].resnets[j].visit(p + ".resnets." + std::to_string(j), fn);
    if (up_blocks[i].has_upsample) up_blocks[i].upsample.visit(p + ".upsamplers.0.conv", fn);
  }
  conv_norm_out.visit(prefix + ".conv_norm_out", fn);
  conv_out.visit(prefix + ".conv_out", fn);
}

}  // namespace lit::vae
