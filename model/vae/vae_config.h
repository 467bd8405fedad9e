// VaeConfig: the architecture of a Stable Diffusion AutoencoderKL, read from the `config.json` that diffusers'
// save_pretrained writes beside the weights. Only the keys that shape the network or its latent space are
// kept, and force_upcast (whether float16 decoding must run in float32); the rest (sample_size, ...) describe
// how diffusers' pipelines use it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lit {

struct VaeConfig {
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<int64_t> block_out_channels = {128, 256, 512, 512};  // per level, encoder order
  int64_t layers_per_block = 2;  // ResNet blocks per encoder level; the decoder has one more per level
  int64_t norm_num_groups = 32;
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;
  // The latent space the diffusion model sees is (z - shift_factor) * scaling_factor: 0.18215 and 0 for the
  // SD 1.x VAEs that DiT and LiT use (sd-vae-ft-ema / -mse).
  double scaling_factor = 0.18215;
  double shift_factor = 0.0;
  // SD's and SDXL's VAEs overflow in float16: diffusers' pipelines upcast them to float32 for decoding when
  // the config says force_upcast (true when absent, diffusers' default; false for fp16-fixed VAEs).
  bool force_upcast = true;

  int64_t levels() const { return static_cast<int64_t>(block_out_channels.size()); }
  // Image pixels per latent pixel along each axis: 2^(levels - 1), 8 for Stable Diffusion.
  int64_t downsample_factor() const { return int64_t{1} << (levels() - 1); }
};

// Parses and checks a diffusers AutoencoderKL config (JSON text); `origin` names it in errors
// ("vae/config.json: ..."). Throws lit::Error for another class, an unsupported block type or activation,
// missing or ill-typed keys, or channel counts GroupNorm cannot divide.
VaeConfig parse_vae_config(const std::string& json_text, const std::string& origin);

// Reads and parses a config.json; throws lit::Error naming the file.
VaeConfig read_vae_config(const std::string& path);

}  // namespace lit
