// PixArt-Σ / PixArt-α / LiT-T2I checkpoints, sniffed:
//   - official .pth (torch.save zip or legacy): {'state_dict': ...} as released, a bare state dict, or a training
//     checkpoint with 'state_dict_ema' (taken for use_weights "ema", the default; "model" takes 'state_dict');
//   - safetensors with the official names (the project's own files carry the PixArt config in "config" metadata),
//     or a single diffusers-named safetensors file;
//   - a diffusers folder: transformer/config.json or config.json, with diffusion_pytorch_model.safetensors,
//     sharded diffusion_pytorch_model-0000k-of-0000n.safetensors + .safetensors.index.json, or
//     diffusion_pytorch_model.bin; names mapped to the official ones (model/t2i/pixart_diffusers.h).
// pos_embed in a checkpoint is dropped: the model recomputes it for every grid. A checkpoint without
// y_embedder.y_embedding (every diffusers one) loads with a zero null caption, reported as missing
// (LoadedPixArt::has_null_caption false): guidance must then use the T5 features of "" (what the official
// PixArt-Σ inference script and the diffusers pipeline do anyway); training's caption dropout would learn it.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/backbone/model_io.h"  // LoadReport
#include "model/t2i/pixart.h"
#include "weights/checkpoint.h"

namespace lit {

// A PixArt checkpoint read into official names, with what the files say about its architecture.
struct PixArtCheckpoint {
  StateDict tensors;        // official names, pos_embed removed
  std::string layout;       // "official" or "diffusers"
  std::string format;       // "torch zip", "torch legacy", "safetensors", "diffusers folder (N shards)"
  std::string weights_key;  // "state_dict" / "state_dict_ema" for .pth containers, "" for a bare state dict
  std::map<std::string, std::string> metadata;  // safetensors metadata (first shard); empty otherwise
  std::optional<PixArtConfig> config;           // from metadata, the diffusers config.json or a config.json beside
  std::string config_source;                    // where config came from
  std::string config_error;          // a config.json beside that could not be read (thrown only if no config is given)
  std::vector<std::string> dropped;  // tensors read but not used (pos_embed)
};

// Whether `path` looks like a PixArt checkpoint: a diffusers PixArt folder, or a file whose tensor names are
// PixArt's (y_embedder.y_proj / caption_projection) or whose "config" metadata is a PixArt config.
bool is_pixart_checkpoint(const std::string& path);

// Reads the checkpoint (see above). shapes_only: meta-device tensors (names, shapes, dtypes; no data read), for
// `lit inspect`. Throws lit::Error naming the file and the problem (e.g. a missing shard).
PixArtCheckpoint read_pixart_checkpoint(const std::string& path, const std::string& use_weights = "ema",
                                        bool shapes_only = false);

// The architecture from tensor shapes: width, patch, channels (x_embedder), depth, caption width and length
// (y_proj, y_embedding), MLP ratio, learned sigma, micro-conditions, attention type (linear: heads and kernel
// from attn.dwc); input_size from pos_embed when present (else 128). Not in the shapes: the softmax head count
// (16 for width 1152, the released models; otherwise lit::Error asks for the config) and pe_interpolation
// (image size / 512, the official rule).
PixArtConfig infer_pixart_config(const StateDict& tensors, int64_t pos_embed_tokens = 0);

// A config.json beside an official checkpoint: a PixArtConfig JSON, or {"constructor_kwargs": {...}} / a bare
// object of the official PixArtMS constructor arguments (learn_sigma, lewei_scale, drop_path 0, qk_norm false,
// kv_compress_config null are understood). Throws lit::Error.
PixArtConfig pixart_config_from_official_kwargs(const std::string& text, const std::string& what);

// Copies tensors into the model by name (dtype/device converted). Shapes must match. strict: every model
// tensor present (y_embedder.y_embedding excepted: zeroed, see above) and every checkpoint tensor used (a pos_embed is
// reported as skipped).
LoadReport load_state_dict(PixArtMS& model, const StateDict& weights, bool strict = true);

struct PixArtLoadOptions {
  std::optional<PixArtConfig> config;  // used when the checkpoint has none; must agree with a stored one
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  std::string use_weights = "ema";
};

struct LoadedPixArt {
  PixArtMS model{nullptr};
  PixArtConfig config;
  std::string config_source;  // "checkpoint metadata", "given", a config.json path, "inferred from tensor shapes"
  std::string layout, format, weights_key;
  LoadReport report;
  bool has_null_caption = true;
  std::map<std::string, std::string> metadata;
};

// Reads, resolves the config (stored > given > beside > inferred), builds in options' dtype/device and loads
// strictly. Eval mode. Throws lit::Error.
LoadedPixArt load_pixart(const std::string& path, const PixArtLoadOptions& options = {});

// ---------------------------------------------------------------------------------------------------------
// Weight inheritance PixArt-Σ -> LiT-T2I, as DiT -> LiT (model/backbone/model_io.h): every tensor but
// blocks.*.attn.* loaded, each block's self-attention freshly initialised (the backbone's reset_parameters),
// the checkpoint's attention (and a pos_embed) skipped; anything else missing, unexpected or of another shape throws
// lit::Error.
// ---------------------------------------------------------------------------------------------------------
LoadReport inherit_lit_t2i_from_pixart(PixArtMS& lit_model, const StateDict& pixart_weights);
LoadedPixArt load_lit_t2i_from_pixart(const std::string& pixart_path, const PixArtConfig& lit_config,
                                      const PixArtLoadOptions& options = {});
// The LiT-T2I counterpart of a PixArt config: linear self-attention with `heads` heads (0: 2 up to width 768,
// 4 above, as DiT -> LiT), dwc 5; everything else (cross-attention heads included) unchanged.
PixArtConfig lit_t2i_config_from_pixart(const PixArtConfig& pixart, int64_t heads = 0);

// Writes the model as safetensors (official names, no pos_embed) with "config" = its PixArt config JSON.
void save_pixart(const std::string& path, const PixArtMS& model, std::optional<at::ScalarType> dtype = std::nullopt,
                 const std::map<std::string, std::string>& metadata = {});

// `lit convert` for PixArt inputs: reads any layout above, writes official names + config metadata (config
// from options.config_path, else the input's, else inferred). Returns what was written.
struct PixArtConvertResult {
  std::string layout, format, weights_key, config_source;
  PixArtConfig config;
  size_t tensor_count = 0;
  uint64_t parameter_count = 0;
  std::vector<std::string> dropped;
  bool has_null_caption = true;
};
PixArtConvertResult convert_pixart_checkpoint(const std::string& input, const std::string& output,
                                              std::optional<at::ScalarType> dtype, const std::string& use_weights,
                                              const std::string& config_path,
                                              const std::map<std::string, std::string>& metadata = {});

}  // namespace lit
