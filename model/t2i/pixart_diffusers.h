// The diffusers layout of PixArt (PixArtTransformer2DModel, as written by diffusers'
// convert_pixart_sigma_to_diffusers.py) mapped back onto the official names:
//   pos_embed.proj -> x_embedder.proj            caption_projection.linear_1/2 -> y_embedder.y_proj.fc1/fc2
//   adaln_single.emb.timestep_embedder.linear_1/2 -> t_embedder.mlp.0/2        adaln_single.linear -> t_block.1
//   adaln_single.emb.resolution_embedder / aspect_ratio_embedder .linear_1/2 -> csize_embedder / ar_embedder .mlp.0/2
//   transformer_blocks.i.attn1.to_q|to_k|to_v (concatenated along dim 0) -> blocks.i.attn.qkv
//   transformer_blocks.i.attn1.to_out.0 -> blocks.i.attn.proj
//   transformer_blocks.i.attn2.to_q -> blocks.i.cross_attn.q_linear, to_k|to_v -> kv_linear, to_out.0 -> proj
//   transformer_blocks.i.ff.net.0.proj / ff.net.2 -> blocks.i.mlp.fc1 / fc2
//   transformer_blocks.i.scale_shift_table -> blocks.i.scale_shift_table
//   proj_out -> final_layer.linear, scale_shift_table -> final_layer.scale_shift_table
// The diffusers layout has no pos_embed (recomputed anyway) and no y_embedding (the learned null caption).
#pragma once

#include <string>

#include "model/t2i/pixart_config.h"
#include "weights/state_dict.h"

namespace lit {

// Whether a state dict uses diffusers' names (it has adaln_single.linear.weight).
bool is_diffusers_pixart_state_dict(const StateDict& tensors);

// The official-name state dict of a diffusers one. Throws lit::Error naming a tensor it cannot place or a
// q/k/v set that is incomplete.
StateDict pixart_from_diffusers(const StateDict& diffusers);

// The PixArtConfig of a diffusers config.json text (PixArtTransformer2DModel or the legacy Transformer2DModel
// with norm_type "ada_norm_single"): sample_size, patch_size, in/out_channels, num_attention_heads x
// attention_head_dim, num_layers, caption_channels, interpolation_scale (null: max(sample_size // 64, 1), as
// diffusers), use_additional_conditions (null: sample_size == 128, as diffusers). The file does not record the
// caption length: model_max_length is 300 (PixArt-Σ's; 120 with micro-conditions, PixArt-α-1024's).
// Throws lit::Error (naming `what`) for another model class or an inconsistent config.
PixArtConfig pixart_config_from_diffusers_json(const std::string& text, const std::string& what);

}  // namespace lit
