// Reading model checkpoints whatever their format: the format is sniffed from the file's first bytes.
//   - safetensors (F32/F16/BF16, memory-mapped), with the model config JSON in its metadata ("config");
//   - PyTorch torch.save zip files (the released DiT .pt) and the legacy pre-zip torch.save format, as a plain
//     state dict or as DiT's training checkpoint {"model", "ema", "opt", "args"}.
// Dtypes are kept as stored; callers convert.
#pragma once

#include <map>
#include <string>

#include "weights/state_dict.h"

namespace lit {

enum class CheckpointFormat { Safetensors, TorchZip, TorchLegacy };
const char* checkpoint_format_name(CheckpointFormat format);  // "safetensors", "torch zip", "torch legacy"

struct LoadedCheckpoint {
  CheckpointFormat format = CheckpointFormat::Safetensors;
  StateDict tensors;
  std::map<std::string, std::string> metadata;  // safetensors metadata; empty for .pt files
  std::string weights_key;  // "ema" or "model" for a training checkpoint, "" for a plain state dict
  std::vector<std::string> top_level_keys;  // a training checkpoint's keys (e.g. model, ema, opt, args)
};

// use_weights: which state dict of a training checkpoint to take ("ema", the default as in DiT's own
// loader, or "model"); ignored for a plain state dict. Throws lit::Error naming the file and the problem.
LoadedCheckpoint load_checkpoint(const std::string& path, const std::string& use_weights = "ema");

}  // namespace lit
