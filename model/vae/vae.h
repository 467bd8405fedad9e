// AutoencoderKL: Stable Diffusion's VAE (the one DiT and LiT work in: stabilityai/sd-vae-ft-ema / -mse) as
// diffusers lays it out. encode: image (N, 3, H, W) in [-1, 1] -> diagonal Gaussian posterior over latents
// (N, latent_channels, H/8, W/8); decode: latents -> image. Both work in the VAE's own latent space; the
// diffusion model's space is (z - shift_factor) * scaling_factor (to_model_space / from_model_space), so the
// scaling belongs to the caller, as in diffusers.
//
// Loading (load_vae): a diffusers folder (config.json + diffusion_pytorch_model.safetensors or .bin, or a
// pipeline folder with a vae/ subfolder), or a single weights file with a config.json beside it or given.
// Both the current attention names (to_q, to_k, to_v, to_out.0) and the older ones (query, key, value,
// proj_attn) load.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "model/vae/vae_blocks.h"
#include "model/vae/vae_config.h"
#include "model/vae/vae_tiling_options.h"

namespace lit {

// q(z | x) = N(mean, exp(logvar)), per latent element; logvar is clamped to [-30, 20] as diffusers does.
struct DiagonalGaussian {
  at::Tensor mean, logvar;

  const at::Tensor& mode() const { return mean; }
  // mean + exp(logvar / 2) * noise, the noise drawn from `generator` on its device (the default CPU/CUDA
  // generator when none is given).
  at::Tensor sample(std::optional<at::Generator> generator = std::nullopt) const;
};

class AutoencoderKL {
 public:
  // The network with meta tensors (shapes only); load_vae fills it.
  explicit AutoencoderKL(VaeConfig config);

  const VaeConfig& config() const { return config_; }
  int64_t latent_channels() const { return config_.latent_channels; }
  double scaling_factor() const { return config_.scaling_factor; }
  at::Device device() const;
  at::ScalarType dtype() const;
  // Where it was loaded from (folder or weights file), for messages.
  const std::string& source() const { return source_; }
  void set_source(std::string source) { source_ = std::move(source); }

  // Moves and converts every tensor.
  void to(at::Device device, at::ScalarType dtype);

  // images: (N, in_channels, H, W) in [-1, 1], H and W multiples of config().downsample_factor(); any dtype
  // and device (converted to the model's). The posterior is in the model's dtype and on its device.
  DiagonalGaussian encode(const at::Tensor& images) const;
  // latents: (N, latent_channels, h, w) in the VAE's space. Returns (N, out_channels, h*f, w*f), about
  // [-1, 1] (not clamped). Tiled when `tiling` asks for it (see VaeTiling).
  at::Tensor decode(const at::Tensor& latents, const VaeTiling& tiling = {}) const;

  // The diffusion model's latent space and back: (z - shift) * scale, z / scale + shift.
  at::Tensor to_model_space(const at::Tensor& z) const;
  at::Tensor from_model_space(const at::Tensor& z) const;

  // Every tensor by its diffusers state-dict name.
  void visit(const vae::ParamVisitor& fn);

  // The two halves, for callers that run parts of them (tests, tiled decoding).
  const vae::Encoder& encoder() const { return encoder_; }
  const vae::Decoder& decoder() const { return decoder_; }

 private:
  void check_input(const at::Tensor& x, int64_t channels, const char* what) const;

  VaeConfig config_;
  vae::Encoder encoder_;
  vae::Decoder decoder_;
  vae::Conv2d quant_conv_, post_quant_conv_;
  std::string source_;
};

// The dtype a VAE runs in beside a diffusion model of `model_dtype`: bf16 stays bf16; fp16 and fp32 decode in
// float32 (Stable Diffusion's VAE overflows float16).
at::ScalarType vae_dtype_for(at::ScalarType model_dtype);
// The same with the VAE's own config: fp16 stays fp16 when force_upcast is false (an fp16-safe VAE).
at::ScalarType vae_dtype_for(at::ScalarType model_dtype, const VaeConfig& config);

struct VaeLoadOptions {
  std::string config_path;  // a config.json to use instead of the one found beside the weights
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

// The files a VAE path stands for.
struct VaeFiles {
  std::string config;   // config.json
  std::string weights;  // .safetensors or .bin
};

// Resolves a folder (diffusers layout, or a pipeline folder holding vae/) or a weights file to its config
// and weights files. Throws lit::Error naming the path and what is missing.
VaeFiles find_vae_files(const std::string& path, const std::string& config_path = "");

// Reads the config and the weights, renames legacy attention tensors, checks every name and shape against
// the config (lit::Error naming the tensor and both shapes) and returns the model on options.device in
// options.dtype.
AutoencoderKL load_vae(const std::string& path, const VaeLoadOptions& options = {});

// Throws lit::Error unless the VAE's latent channel count is `channels`, what `what` (a model such as
// "DiT-XL/2", or a latents file) has, naming the VAE and both counts.
void check_latent_channels(const AutoencoderKL& vae, int64_t channels, const std::string& what = "the model");

}  // namespace lit
