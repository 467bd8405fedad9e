#include "model/vae/vae_tiling.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.h"

namespace lit::vae {
namespace {

// Peak live tensors relative to the counts below, from peak RSS measured on the CPU for several latent
// sizes (the pixel path peaked at 5 full-resolution activations where the count below says 3), with a margin.
constexpr double kPixelPathFactor = 2.0;
// The attention matrix chunk the mid block computes at once (vae_blocks.cpp): scores and softmax.
constexpr int64_t kAttentionChunkElements = int64_t{1} << 22;

std::string mib(int64_t bytes) {
  return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB";
}

// n core boundaries splitting `length` as evenly as possible into pieces of at most `tile`.
std::vector<int64_t> split(int64_t length, int64_t tile) {
  const int64_t pieces = (length + tile - 1) / tile;
  std::vector<int64_t> bounds;
  for (int64_t i = 0; i <= pieces; ++i) bounds.push_back(i * length / pieces);
  return bounds;
}

// A tile's contribution along one axis: the image pixels [begin, end) and their weights. Inside the core the
// weight is 1; across an edge shared with a neighbour it ramps linearly over `band` pixels centred on the
// edge, and the neighbour's ramp is its complement, so the weights of all tiles sum to one everywhere.
struct AxisBlend {
  int64_t begin = 0, end = 0;
  at::Tensor weights;  // float64 (end - begin)
};

AxisBlend axis_blend(int64_t core_begin, int64_t core_end, int64_t length, int64_t band) {
  const int64_t half = band / 2;
  AxisBlend b;
  b.begin = core_begin == 0 ? 0 : core_begin - half;
  b.end = core_end == length ? length : core_end - half + band;
  const at::Tensor centre = at::arange(b.begin, b.end, at::kDouble) + 0.5;
  b.weights = at::ones({b.end - b.begin}, at::kDouble);
  if (band > 0) {
    if (core_begin > 0) b.weights = b.weights * ((centre - (core_begin - half)) / band).clamp(0, 1);
    if (core_end < length) b.weights = b.weights * (1 - (centre - (core_end - half)) / band).clamp(0, 1);
  }
  return b;
}

}  // namespace

int64_t receptive_radius(const VaeConfig& config) {
  double radius = 0;
  for (const auto& step : Decoder(config).pixel_steps()) radius += step.radius;
  return static_cast<int64_t>(std::ceil(radius - 1e-9));
}

int64_t estimate_latent_path_bytes(const VaeConfig& config, int64_t batch, int64_t h, int64_t w, size_t element_size) {
  const int64_t tokens = h * w, channels = config.block_out_channels.back();
  // The mid block's attention is the widest point: its input, the normalised input, q, k, v, the output
  // being assembled and its projection; plus one chunk of the attention matrix.
  double elements = 7.0 * static_cast<double>(batch * channels * tokens);
  if (config.mid_block_add_attention)
    elements += 2.0 * static_cast<double>(std::min(batch * tokens * tokens, kAttentionChunkElements));
  return static_cast<int64_t>(elements * static_cast<double>(element_size));
}

int64_t estimate_pixel_path_bytes(const VaeConfig& config, int64_t batch, int64_t h, int64_t w, size_t element_size) {
  const std::vector<int64_t> ch(config.block_out_channels.rbegin(), config.block_out_channels.rend());
  double peak = 0, area = static_cast<double>(h * w);
  int64_t in = ch[0];
  for (size_t level = 0; level < ch.size(); ++level) {
    // A ResNet block holds its input, the normalised input and the first convolution's output at once.
    peak = std::max(peak, static_cast<double>(2 * in + ch[level]) * area);
    if (level + 1 < ch.size()) {
      area *= 4;
      // Up-sampling: the up-sampled tensor and the convolution's output, both at the finer resolution.
      peak = std::max(peak, 2.0 * static_cast<double>(ch[level]) * area);
    }
    in = ch[level];
  }
  return static_cast<int64_t>(kPixelPathFactor * peak * static_cast<double>(batch) * static_cast<double>(element_size));
}

std::optional<TilePlan> plan_tiled_decode(const VaeConfig& config, int64_t batch, int64_t h, int64_t w,
                                          const VaeTiling& tiling, size_t element_size) {
  if (tiling.tile <= 0 && tiling.memory_budget <= 0) return std::nullopt;
  TilePlan plan;
  plan.overlap = tiling.overlap >= 0 ? tiling.overlap : receptive_radius(config) + kBlendBand / 2;
  plan.tile = tiling.tile;
  if (plan.tile <= 0) {
    // The latent-resolution part runs first; the mid block's output (`hidden`) then stays while the tiles run.
    const int64_t budget = tiling.memory_budget, e = static_cast<int64_t>(element_size);
    const int64_t hidden = config.block_out_channels.back() * h * w * e;
    const int64_t untiled = std::max(estimate_latent_path_bytes(config, batch, h, w, element_size),
                                     batch * hidden + estimate_pixel_path_bytes(config, batch, h, w, element_size));
    if (untiled <= budget) return std::nullopt;
    // Tiles are decoded one sample at a time.
    const int64_t latent_part = estimate_latent_path_bytes(config, 1, h, w, element_size);
    const std::string size = std::to_string(h) + "x" + std::to_string(w);
    if (std::max(latent_part, hidden) >= budget)
      throw Error("VAE decode: a memory budget of " + mib(budget) + " cannot hold the latent-resolution part of a " +
                  size + " latent (" + mib(std::max(latent_part, hidden)) + ")");
    const auto tile_peak = [&](int64_t core) {
      const int64_t th = std::min(h, core + 2 * plan.overlap), tw = std::min(w, core + 2 * plan.overlap);
      return std::max(latent_part, hidden + estimate_pixel_path_bytes(config, 1, th, tw, element_size));
    };
    const int64_t min_tile = 2 * kBlendBand;
    for (int64_t t = std::max(h, w); t >= min_tile && plan.tile == 0; --t)
      if (tile_peak(t) <= budget) plan.tile = t;
    if (plan.tile == 0)
      throw Error("VAE decode: a memory budget of " + mib(budget) + " is too small for a " + size +
                  " latent: the smallest tile needs " + mib(tile_peak(min_tile)));
  }
  plan.blend = std::min({plan.overlap, kBlendBand, plan.tile});
  plan.rows = split(h, plan.tile);
  plan.cols = split(w, plan.tile);
  return plan;
}

namespace {

// A tile: its region of the latent (core plus context, clipped to the latent) and its core.
struct Tile {
  int64_t y0, y1, x0, x1;      // core
  int64_t ty0, ty1, tx0, tx1;  // region
};

std::vector<Tile> tiles_of(const TilePlan& plan, int64_t h, int64_t w) {
  std::vector<Tile> tiles;
  for (size_t i = 0; i + 1 < plan.rows.size(); ++i) {
    for (size_t j = 0; j + 1 < plan.cols.size(); ++j) {
      Tile t{plan.rows[i], plan.rows[i + 1], plan.cols[j], plan.cols[j + 1], 0, 0, 0, 0};
      t.ty0 = std::max<int64_t>(0, t.y0 - plan.overlap);
      t.ty1 = std::min(h, t.y1 + plan.overlap);
      t.tx0 = std::max<int64_t>(0, t.x0 - plan.overlap);
      t.tx1 = std::min(w, t.x1 + plan.overlap);
      tiles.push_back(t);
    }
  }
  return tiles;
}

TileNorms norms_for(const Tile& t, bool crop, double out_margin) {
  TileNorms norms;
  norms.region_h = t.ty1 - t.ty0;
  norms.region_w = t.tx1 - t.tx0;
  norms.crop = crop;
  norms.out_margin = out_margin;
  norms.core_y0 = t.y0 - t.ty0;
  norms.core_y1 = t.y1 - t.ty0;
  norms.core_x0 = t.x0 - t.tx0;
  norms.core_x1 = t.x1 - t.tx0;
  return norms;
}

at::Tensor region(const at::Tensor& hidden, const Tile& t) {
  return hidden.slice(2, t.ty0, t.ty1).slice(3, t.tx0, t.tx1);
}

}  // namespace

std::vector<GroupStats> gather_norm_stats(const Decoder& decoder, const at::Tensor& hidden, const TilePlan& plan,
                                          const std::function<void()>& on_tile) {
  const std::vector<Tile> tiles = tiles_of(plan, hidden.size(2), hidden.size(3));
  std::vector<GroupStats> stats;
  for (size_t layer = 0; layer < decoder.pixel_norm_layers(); ++layer) {
    GroupStats gathered;
    for (const Tile& t : tiles) {
      TileNorms norms = norms_for(t, true, 0);
      norms.given = &stats;
      norms.gather = &gathered;
      try {
        decoder.forward_pixels(region(hidden, t), &norms);
      } catch (const TileStatsGathered&) {
      }
      if (on_tile) on_tile();
    }
    stats.push_back(std::move(gathered));
  }
  return stats;
}

at::Tensor decode_pixels_tiled(const Decoder& decoder, const VaeConfig& config, const at::Tensor& hidden,
                               const TilePlan& plan, const VaeTiling& tiling) {
  const int64_t n = hidden.size(0), h = hidden.size(2), w = hidden.size(3), f = config.downsample_factor();
  const std::vector<Tile> tiles = tiles_of(plan, h, w);
  // A single tile covering the latent has the image's statistics as its own.
  const bool exact = tiling.exact_group_norm && tiles.size() > 1;
  const int64_t passes = 1 + (exact ? static_cast<int64_t>(decoder.pixel_norm_layers()) : 0);
  const int64_t total = n * passes * static_cast<int64_t>(tiles.size());
  int64_t done = 0;
  const auto tick = [&] {
    if (tiling.progress) tiling.progress(++done, total);
  };

  at::Tensor out = at::zeros({n, config.out_channels, h * f, w * f}, hidden.options());
  for (int64_t s = 0; s < n; ++s) {
    const at::Tensor sample = hidden.slice(0, s, s + 1);
    const std::vector<GroupStats> stats =
        exact ? gather_norm_stats(decoder, sample, plan, tick) : std::vector<GroupStats>{};
    for (const Tile& t : tiles) {
      TileNorms norms = norms_for(t, true, std::ceil(plan.blend / 2.0));
      norms.given = exact ? &stats : nullptr;
      const at::Tensor pixels = decoder.forward_pixels(region(sample, t), &norms);
      const int64_t py0 = (t.ty0 + norms.region_y0) * f, px0 = (t.tx0 + norms.region_x0) * f;  // its origin
      const AxisBlend by = axis_blend(t.y0 * f, t.y1 * f, h * f, plan.blend * f);
      const AxisBlend bx = axis_blend(t.x0 * f, t.x1 * f, w * f, plan.blend * f);
      const at::Tensor weight = (by.weights.unsqueeze(1) * bx.weights.unsqueeze(0)).to(out.options());
      out.select(0, s)
          .slice(1, by.begin, by.end)
          .slice(2, bx.begin, bx.end)
          .add_(pixels.select(0, 0).slice(1, by.begin - py0, by.end - py0).slice(2, bx.begin - px0, bx.end - px0) *
                weight);
      tick();
    }
  }
  return out;
}

}  // namespace lit::vae
