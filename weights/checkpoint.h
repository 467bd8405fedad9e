// Reading model checkpoints whatever their format: the format is sniffed from the file's first bytes.
//   - safetensors (F32/F16/BF16, memory-mapped), with the model config JSON in its metadata ("config");
//   - PyTorch torch.save zip files (the released DiT .pt) and the legacy pre-zip torch.save format, as a plain
//     state dict or as DiT's training checkpoint {"model", "ema", "opt", "args"}.
// Dtypes are kept as stored; callers convert.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "weights/checkpoint_format.h"
#include "weights/state_dict.h"

namespace lit {


struct LoadedCheckpoint {
  CheckpointFormat format = CheckpointFormat::Safetensors;
  StateDict tensors;
  std::map<std::string, std::string> metadata;  // safetensors metadata; empty for .pt files
  std::string weights_key;                      // "ema" or "model" for a training checkpoint, "" for a plain state dict
  std::vector<std::string> top_level_keys;      // a training checkpoint's keys (e.g. model, ema, opt, args)
};

// use_weights: which state dict of a training checkpoint to take ("ema", the default as in DiT's own
// loader, or "model"; any top-level key holding a state dict, e.g. "state_dict", works); ignored for a plain
// state dict. Only the storages of the chosen state dict are read. Throws lit::Error naming the file and the
// problem (a missing key lists the keys present).
LoadedCheckpoint load_checkpoint(const std::string& path, const std::string& use_weights = "ema");

// What load_checkpoint would return, without reading tensor data (names, dtypes and shapes; storages are
// still checked to hold every tensor). For `lit inspect` on multi-gigabyte files.
struct TensorInfo {
  std::string name;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> shape;
};
struct CheckpointInfo {
  CheckpointFormat format = CheckpointFormat::Safetensors;
  std::vector<TensorInfo> tensors;  // in file order
  std::map<std::string, std::string> metadata;
  std::string weights_key;
  std::vector<std::string> top_level_keys;
};
CheckpointInfo read_checkpoint_info(const std::string& path, const std::string& use_weights = "ema");

uint64_t parameter_count(const StateDict& tensors);
uint64_t parameter_count(const std::vector<TensorInfo>& tensors);

// The model config JSON of a checkpoint (DESIGN §3): its "config" metadata if present, else the text of a
// config.json in the checkpoint's folder, else "". Throws lit::Error if the text found is not a JSON object.
// `source`, when given, receives where it came from: "metadata", the config.json path, or "".
std::string checkpoint_config_json(const std::string& path, const std::map<std::string, std::string>& metadata,
                                   std::string* source = nullptr);

// Throws lit::Error (naming `what`) unless text parses as a JSON object.
void check_config_json(const std::string& text, const std::string& what);

// Writes a checkpoint the way the project stores models: safetensors with the model config JSON under the
// metadata key "config" (omitted when empty; it must be a JSON object) plus any other metadata. Atomic.
void save_checkpoint(const std::string& path, const StateDict& tensors, const std::string& config_json = "",
                     std::map<std::string, std::string> metadata = {});

}  // namespace lit
