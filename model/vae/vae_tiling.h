// Tiled decoding: the decoder's full-resolution path run tile by tile, so that decoding a large image needs
// memory for one tile rather than for the whole image.
//
// Why the result matches the untiled decode:
//   - conv_in and the mid block (with its global attention) run once on the whole latent. They work at
//     latent resolution, 64 times fewer pixels than the output, and attention needs every position anyway.
//   - Each tile is a core plus `overlap` latent pixels of context on every side. With the overlap at least
//     the up path's receptive radius, the core's pixels see exactly the inputs they see untiled.
//   - GroupNorm normalises by statistics over the whole image, which no tile has. They are gathered layer by
//     layer: one pass over the tiles per GroupNorm layer, each running the tiles up to that layer (with the
//     statistics already known for the layers before it) and summing over the cores. Approximate statistics
//     will not do: a decoder amplifies their errors from layer to layer (a random-weight one wildly), so
//     exactness layer by layer is what makes tiles agree. The passes cost several times an untiled decode
//     (most layers sit at the full resolution); VaeTiling::exact_group_norm = false skips them.
//   - Neighbouring tiles are cross-faded over a band across each core edge (linear weights summing to one),
//     so that a smaller overlap than the radius, or per-tile statistics, give a smooth result, not seams.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "model/vae/vae_blocks.h"
#include "model/vae/vae_config.h"
#include "model/vae/vae_tiling_options.h"

namespace lit::vae {

// Width in latent pixels of the cross-fade band centred on each core edge.
constexpr int64_t kBlendBand = 4;

// Latent pixels of context after which the full-resolution path's output no longer depends on its input.
int64_t receptive_radius(const VaeConfig& config);

// Estimated peak working memory in bytes (weights and the output image excluded) of decoding `batch`
// latents of h x w: the latent-resolution part (conv_in, mid block) and the full-resolution part.
int64_t estimate_latent_path_bytes(const VaeConfig& config, int64_t batch, int64_t h, int64_t w, size_t element_size);
int64_t estimate_pixel_path_bytes(const VaeConfig& config, int64_t batch, int64_t h, int64_t w, size_t element_size);

struct TilePlan {
  int64_t tile = 0, overlap = 0, blend = 0;  // latent pixels
  std::vector<int64_t> rows, cols;           // core boundaries: cores are [rows[i], rows[i+1]) x [cols[j], cols[j+1])
  int64_t tiles() const { return static_cast<int64_t>((rows.size() - 1) * (cols.size() - 1)); }
};

// Whether and how to tile a decode of `batch` latents of h x w; nullopt: decode untiled (no tile size and
// no budget, or everything fits in the budget). Throws lit::Error when the budget cannot hold even the
// latent-resolution part or the smallest tile, naming both sizes.
std::optional<TilePlan> plan_tiled_decode(const VaeConfig& config, int64_t batch, int64_t h, int64_t w,
                                          const VaeTiling& tiling, size_t element_size);

// The whole image's GroupNorm statistics for every layer of the full-resolution path, sample by sample
// (hidden: the mid block's output of one sample, (1, C, h, w)), gathered tile by tile.
std::vector<GroupStats> gather_norm_stats(const Decoder& decoder, const at::Tensor& hidden, const TilePlan& plan,
                                          const std::function<void()>& on_tile = {});

// The full-resolution path over `hidden` (the mid block's output, (N, C, h, w)) tile by tile.
at::Tensor decode_pixels_tiled(const Decoder& decoder, const VaeConfig& config, const at::Tensor& hidden,
                               const TilePlan& plan, const VaeTiling& tiling);

}  // namespace lit::vae
