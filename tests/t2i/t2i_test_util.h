// Helpers of the text-to-image tests: fixture tensors, the fixture's configs, the fixture's error measure.
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "model/t2i/pixart_config.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

namespace lit::test {

inline at::Tensor t2i_tensor(const std::string& file, const std::string& name) {
  return SafetensorsFile::open(fixture("t2i/" + file)).tensor(name).clone();
}

// The fixture README's "rel": max|a - b| / max|b| (infinity on a shape mismatch or NaN).
inline double max_rel(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return INFINITY;
  const at::Tensor a64 = a.detach().to(at::kCPU, at::kDouble), b64 = b.detach().to(at::kCPU, at::kDouble);
  if (at::isnan(a64).any().item<bool>()) return INFINITY;
  return (a64 - b64).abs().max().item<double>() / b64.abs().max().item<double>();
}

// pixart_tiny/config.json's constructor arguments.
inline PixArtConfig tiny_pixart_config() {
  PixArtConfig c;
  c.input_size = 8;
  c.patch_size = 2;
  c.in_channels = 4;
  c.hidden_size = 64;
  c.depth = 2;
  c.num_heads = 4;
  c.caption_channels = 64;
  c.pe_interpolation = 1.0;
  c.model_max_length = 24;
  return c;
}

// lit_t2i_tiny: the same with LinearAttention(64, 2 heads, kernel 5).
inline PixArtConfig tiny_lit_config() {
  PixArtConfig c = tiny_pixart_config();
  c.attention = AttentionType::Linear;
  c.linear_heads = 2;
  c.dwc_kernel = 5;
  return c;
}

}  // namespace lit::test
