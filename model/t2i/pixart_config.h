// PixArtConfig: a PixArt-Σ / PixArt-α / LiT-T2I architecture, with the keys of the official PixArtMS
// constructor (PixArt-sigma's diffusion/model/nets/PixArtMS.py) plus the self-attention type:
//
//   { "model": "PixArtMS", "input_size": 128, "patch_size": 2, "in_channels": 4, "hidden_size": 1152,
//     "depth": 28, "num_heads": 16, "mlp_ratio": 4.0, "class_dropout_prob": 0.1, "pred_sigma": true,
//     "caption_channels": 4096, "pe_interpolation": 2.0, "model_max_length": 300, "micro_condition": false,
//     "attention": "softmax" }          // "linear" (LiT-T2I) adds "linear_heads": 4, "dwc_kernel": 5
//
// num_heads is the softmax self-attention's and always the cross-attention's head count; a LiT-T2I's linear
// self-attention has its own (linear_heads). "base_size" (the token grid side the sin-cos positions are
// scaled onto) defaults to input_size / patch_size as in PixArtMS; "learn_sigma" is read as a synonym of
// "pred_sigma". The "model" key ("PixArtMS") is what tells a PixArt config from a DiT/LiT one (ModelConfig)
// in a checkpoint's "config" metadata.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/backbone/model_config.h"  // AttentionType

namespace lit {

struct PixArtConfig {
  int64_t input_size = 128;  // latent side of the training resolution (1024 px / 8)
  int64_t patch_size = 2;
  int64_t in_channels = 4;
  int64_t hidden_size = 1152;
  int64_t depth = 28;
  int64_t num_heads = 16;
  double mlp_ratio = 4.0;
  double class_dropout_prob = 0.1;  // caption dropout to the null caption (training)
  bool pred_sigma = true;           // 2C outputs: eps then the variance interpolation values
  int64_t caption_channels = 4096;  // the text encoder's width (T5-XXL: 4096)
  double pe_interpolation = 1.0;    // positions divided by this (official: 0.5/1/2/4 at 256/512/1024/2048 px)
  int64_t base_size = 0;            // 0: input_size / patch_size
  int64_t model_max_length = 300;   // caption tokens; rows of the learned null caption y_embedding
  bool micro_condition = false;     // PixArt-α 1024: size and aspect-ratio embedders added to t
  AttentionType attention = AttentionType::Softmax;
  int64_t linear_heads = 4;  // linear attention only
  int64_t dwc_kernel = 5;    // linear attention only

  // ---- derived sizes ----
  int64_t out_channels() const { return pred_sigma ? 2 * in_channels : in_channels; }
  int64_t grid_size() const { return input_size / patch_size; }
  int64_t effective_base_size() const { return base_size > 0 ? base_size : input_size / patch_size; }
  int64_t mlp_hidden_size() const { return static_cast<int64_t>(static_cast<double>(hidden_size) * mlp_ratio); }
  bool is_linear() const { return attention == AttentionType::Linear; }
  int64_t self_attention_heads() const { return is_linear() ? linear_heads : num_heads; }

  // Throws lit::Error with a one-line message naming the first inconsistency.
  void validate() const;

  std::string to_json(int indent = -1) const;
  // Validates, rejects unknown keys (except "note" and keys starting with '_'); needs the size keys
  // (input_size, patch_size, in_channels, hidden_size, depth, num_heads, caption_channels).
  static PixArtConfig from_json(const std::string& text);
  static PixArtConfig from_json_file(const std::string& path);
  // Whether a config JSON text describes a PixArt model (has "model": "PixArtMS" or "caption_channels").
  static bool is_pixart_json(const std::string& text);

  // Presets at image_size pixels (SD/SDXL VAE: latents image_size / 8), pe_interpolation = image_size / 512
  // as the official configs (256: 0.5, 512: 1, 1024: 2, 2048: 4):
  //   "PixArt-Sigma-XL/2"  depth 28, width 1152, 16 heads, T5-XXL captions (4096), 300 tokens
  //   "PixArt-Alpha-XL/2"  the same with 120 tokens; micro-conditions at 1024 px (PixArt-XL-2-1024-MS)
  //   "LiT-T2I-XL/2"       PixArt-Sigma-XL/2 with linear self-attention, 4 heads, 5x5 dwc
  static PixArtConfig preset(const std::string& name, int64_t image_size = 1024);
  static std::vector<std::string> preset_names();
  // The preset this is at its own resolution, or "custom".
  std::string preset_name() const;
  // One line: "PixArt-Sigma-XL/2: 128x128x4 input, patch 2, 28 blocks, width 1152, 16 softmax heads, ...".
  std::string summary() const;

  bool operator==(const PixArtConfig& other) const;
  bool operator!=(const PixArtConfig& other) const { return !(*this == other); }
};

}  // namespace lit
