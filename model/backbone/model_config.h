// ModelConfig: a DiT/LiT architecture, with the keys of DiT's constructor plus the attention type.
//
//   { "input_size": 32, "patch_size": 2, "in_channels": 4, "hidden_size": 1152, "depth": 28, "num_heads": 16,
//     "mlp_ratio": 4.0, "class_dropout_prob": 0.1, "num_classes": 1000, "learn_sigma": true,
//     "attention": "softmax" }                          // "linear" adds "dwc_kernel": 5
//
// It travels with every checkpoint the project writes (safetensors metadata "config"). For foreign files it
// comes from a given JSON, a named preset ("DiT-XL/2", "LiT-B/2") or the tensor shapes (infer_config).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lit {

class StateDict;

enum class AttentionType { Softmax, Linear };
const char* attention_type_name(AttentionType type);  // "softmax", "linear"

struct ModelConfig {
  int64_t input_size = 32;  // latent (or pixel) side length; the image is input_size x input_size
  int64_t patch_size = 2;
  int64_t in_channels = 4;
  int64_t hidden_size = 1152;
  int64_t depth = 28;
  int64_t num_heads = 16;
  double mlp_ratio = 4.0;
  double class_dropout_prob = 0.1;  // > 0 adds the null class row used by classifier-free guidance
  int64_t num_classes = 1000;
  bool learn_sigma = true;  // the output carries the variance channels too (2 * in_channels)
  AttentionType attention = AttentionType::Softmax;
  int64_t dwc_kernel = 5;  // linear attention only: side of the depthwise convolution on V

  // ---- derived sizes ----
  int64_t out_channels() const { return learn_sigma ? 2 * in_channels : in_channels; }
  int64_t grid_size() const { return input_size / patch_size; }  // tokens per side
  int64_t num_patches() const { return grid_size() * grid_size(); }
  int64_t head_dim() const { return hidden_size / num_heads; }
  int64_t mlp_hidden_size() const { return static_cast<int64_t>(static_cast<double>(hidden_size) * mlp_ratio); }
  bool has_null_class() const { return class_dropout_prob > 0; }
  int64_t label_table_rows() const { return num_classes + (has_null_class() ? 1 : 0); }
  bool is_linear() const { return attention == AttentionType::Linear; }

  // Throws lit::Error with a one-line message naming the first inconsistency.
  void validate() const;

  // JSON text (the format above). from_json validates, rejects unknown keys (except "note" and keys starting
  // with '_'), and needs the six size keys; the others default as in DiT's constructor.
  std::string to_json(int indent = -1) const;
  static ModelConfig from_json(const std::string& text);
  static ModelConfig from_json_file(const std::string& path);

  // Named presets: "DiT-XL/2" ... "DiT-S/8" (the released DiT models) and "LiT-XL/2" ... "LiT-S/8" (same
  // widths and depths, linear attention with 2 heads for S and B, 4 for L and XL). image_size is in pixels of
  // the SD VAE's input (latents are image_size / 8 with 4 channels); 1000 classes, learned sigma.
  static ModelConfig preset(const std::string& name, int64_t image_size = 256);
  static std::vector<std::string> preset_names();
  // "DiT-XL/2" (or "LiT-B/4") when the architecture is a preset's at any image size, otherwise "custom".
  std::string preset_name() const;
  // One line for logs: "DiT-XL/2, 32x32x4 input, 28 blocks, width 1152, 16 softmax heads, 1000 classes".
  std::string summary() const;

  bool operator==(const ModelConfig& other) const;
  bool operator!=(const ModelConfig& other) const { return !(*this == other); }
};

// A configuration read from a state dict's tensor shapes, matched against the released configurations:
// depth from the block count, width / patch / channels from x_embedder, input size from pos_embed, learned
// sigma from the final layer, attention type from attn.qkv (softmax) vs attn.q / attn.kv (linear; heads and
// kernel from attn.dwc). The label table is taken to hold a null row (DiT's default class_dropout_prob 0.1):
// num_classes = rows - 1. A softmax model's head count is not in its shapes: it is the released
// configuration's when the width is a released one (1152, 1024: 16; 768: 12; 384: 6); otherwise this throws
// lit::Error asking for the config.
ModelConfig infer_config(const StateDict& weights);

}  // namespace lit
