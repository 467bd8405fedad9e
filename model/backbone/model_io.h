// Models to and from files: build a DiT/LiT from a checkpoint (any format weights/checkpoint.h reads), load
// a state dict strictly, initialise a LiT from a DiT checkpoint (weight inheritance), and save a model as
// safetensors with its config in the metadata.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "model/backbone/dit.h"
#include "model/backbone/model_config.h"
#include "weights/checkpoint.h"
#include "weights/state_dict.h"

namespace lit {

// What a load did, tensor by tensor. Names are the model's (state-dict) names.
struct LoadReport {
  std::vector<std::string> loaded;       // model tensors copied from the checkpoint
  std::vector<std::string> initialised;  // model tensors given fresh values instead (inheritance: attention)
  std::vector<std::string> skipped;      // checkpoint tensors deliberately left unused (inheritance: DiT attention)
  std::vector<std::string> unexpected;   // checkpoint tensors the model has no place for (non-strict loads only)
  std::vector<std::string> missing;      // model tensors the checkpoint lacks, left as they were (non-strict only)
  int64_t loaded_params = 0, initialised_params = 0, skipped_params = 0;

  // One paragraph for the tools, e.g. "loaded 292 tensors (675,129,632 parameters); initialised 112 ...".
  std::string to_string() const;
};

// The model's tensors by state-dict name, in the model's order (pos_embed, x_embedder..., blocks..., final_layer),
// detached views sharing the model's storage.
StateDict state_dict(const DiT& model);

// Copies tensors into the model by name, converting dtype and device to the model's. Shapes must match
// (lit::Error naming the tensor and both shapes). strict: every model tensor must be present and every
// checkpoint tensor used (lit::Error naming them); otherwise those are listed in the report.
LoadReport load_state_dict(DiT& model, const StateDict& weights, bool strict = true);

struct ModelLoadOptions {
  std::optional<ModelConfig> config;  // used when the checkpoint carries none (see resolve_model_config)
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
  std::string use_weights = "ema";  // for training checkpoints: "ema" (DiT's choice) or "model"
};

struct LoadedModel {
  DiT model{nullptr};
  ModelConfig config;
  std::string config_source;  // "checkpoint metadata", "given", the config.json path, "inferred from tensor shapes"
  LoadReport report;
  CheckpointFormat format = CheckpointFormat::Safetensors;
  std::string weights_key;                      // "ema" / "model" for a training checkpoint, "" otherwise
  std::map<std::string, std::string> metadata;  // safetensors metadata (e.g. "class_names"); empty for .pt
};

// The architecture of a checkpoint, first found of: its "config" metadata (a given config must then agree),
// the given config, a config.json beside the file, the tensor shapes (infer_config). `source` receives which.
ModelConfig resolve_model_config(const std::string& path, const LoadedCheckpoint& checkpoint,
                                 const std::optional<ModelConfig>& given, std::string* source = nullptr);

// Reads a checkpoint, resolves its config, builds the model in options.dtype on options.device and loads it
// strictly (DiT -> DiT, LiT -> LiT). The model is returned in eval mode (no label dropout): call train() to
// train it. Throws lit::Error.
LoadedModel load_model(const std::string& path, const ModelLoadOptions& options = {});

// ---------------------------------------------------------------------------------------------------------
// Weight inheritance (LiT paper): a LiT starts from a DiT of the same width and depth. Every tensor except
// blocks.*.attn.* is loaded; each block's attention is freshly initialised (Xavier-uniform linears, zero
// biases, PyTorch's default for the depthwise conv) and the checkpoint's attention tensors are skipped.
// Anything else missing, unexpected or of another shape throws lit::Error naming it (and both shapes).
// ---------------------------------------------------------------------------------------------------------
LoadReport inherit_from_dit(DiT& lit_model, const StateDict& dit_weights);

// Builds the LiT of lit_config (attention must be linear) and inherits from the DiT checkpoint at dit_path.
// The model is returned in eval mode, like load_model's.
LoadedModel load_lit_from_dit(const std::string& dit_path, const ModelConfig& lit_config,
                              const ModelLoadOptions& options = {});

// The LiT counterpart of a DiT config: linear attention with `heads` heads (0: the project default for the
// width, 2 up to width 768 and 4 above), dwc_kernel 5; everything else unchanged.
ModelConfig lit_config_from_dit(const ModelConfig& dit_config, int64_t heads = 0);

// ---------------------------------------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------------------------------------
// Writes the model as safetensors (atomically), in its own dtype or `dtype`, with metadata "config" = the
// model config JSON plus `metadata`. Throws lit::Error.
void save_model(const std::string& path, const DiT& model, std::optional<at::ScalarType> dtype = std::nullopt,
                const std::map<std::string, std::string>& metadata = {});

}  // namespace lit
