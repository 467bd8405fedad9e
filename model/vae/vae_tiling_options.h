// VaeTiling: how AutoencoderKL::decode may split a large decode into tiles (model/vae/vae.h takes it;
// model/vae/vae_tiling.h does the tiling). Its own header so that the tiling code needs nothing of vae.h.
#pragma once

#include <cstdint>
#include <functional>

namespace lit {

// Decoding large images tile by tile (model/vae/vae_tiling.h explains how and why the result matches).
struct VaeTiling {
  // Edge of a tile's core in latent pixels (8 image pixels each for SD). 0: chosen from memory_budget, or no
  // tiling when there is no budget or the whole decode fits in it.
  int64_t tile = 0;
  // Latent pixels of context decoded around each core. -1: the decoder's receptive radius plus the blend
  // band, which makes every output pixel what the untiled decode gives (up to the GroupNorm statistics).
  int64_t overlap = -1;
  // Bytes the decode may use beyond the weights and the output image; 0: no limit.
  int64_t memory_budget = 0;
  // true: every tile is normalised with the whole image's GroupNorm statistics, gathered layer by layer
  // beforehand (the result is the untiled decode's, to float rounding; costs several times the work).
  // false: each tile is normalised by its own statistics, as diffusers' tiled decoding does (one pass; the
  // tiles' colours can drift apart, which the cross-fade hides as gradual shifts rather than seams).
  bool exact_group_norm = true;
  // Called after each tile: (tiles done, tiles of all passes and samples).
  std::function<void(int64_t done, int64_t total)> progress;
};

}  // namespace lit
