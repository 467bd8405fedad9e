// Latent files: one tensor (N, C, h, w) in the diffusion model's latent space, i.e. already multiplied by
// the VAE's scaling factor, stored as safetensors under the name "latents". `lit vae encode` and
// `lit generate --save-latents` write them; `lit vae decode` reads them.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>

namespace lit {

inline constexpr const char* kLatentsTensorName = "latents";

// Writes (N, C, h, w) latents (any device; stored as float32) with string metadata, atomically.
void write_latents(const std::string& path, const at::Tensor& latents,
                   const std::map<std::string, std::string>& metadata = {});

// Reads the "latents" tensor, or the file's only tensor whatever its name; it must be 4-D. Returns float32
// on the CPU; `metadata` receives the file's metadata. Throws lit::Error naming the file and the problem.
at::Tensor read_latents(const std::string& path, std::map<std::string, std::string>* metadata = nullptr);

}  // namespace lit
