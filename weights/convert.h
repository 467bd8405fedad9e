// Converting checkpoints to the project's own format (safetensors with the model config in its metadata),
// and dtype casts of state dicts. The work behind `lit convert`.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <string>

#include "weights/checkpoint.h"

namespace lit {

// "fp32" | "fp16" | "bf16" (also "float32", "float16", "bfloat16", "half") -> the scalar type; throws lit::Error.
at::ScalarType parse_float_dtype(const std::string& name);

// Floating-point tensors cast to `type`; integer and bool tensors (e.g. BatchNorm counters) kept as they are.
StateDict cast_floating(const StateDict& tensors, at::ScalarType type);

struct ConvertOptions {
  std::optional<at::ScalarType> dtype;          // cast floating tensors; unset: keep the stored dtypes
  std::string use_weights = "ema";              // which state dict of a training checkpoint
  std::string config_path;                      // a model config JSON file; empty: the input's own (see below)
  std::map<std::string, std::string> metadata;  // set (or replace) these metadata entries ("class_names", ...)
};

struct ConvertResult {
  CheckpointFormat input_format = CheckpointFormat::Safetensors;
  std::string weights_key;  // as in LoadedCheckpoint
  size_t tensor_count = 0;
  uint64_t parameter_count = 0;
  std::string config_source;  // the config file used, "metadata" (kept from the input), or "" (none)
};

// Reads any checkpoint (load_checkpoint) and writes it as safetensors, atomically. The config stored under the
// metadata key "config" is the text of options.config_path verbatim (it must be a JSON object), else the
// input's own (its "config" metadata, or a config.json beside it), else none. Other safetensors metadata of
// the input is kept; options.metadata is set over it ("config" cannot be set this way). Throws lit::Error.
ConvertResult convert_checkpoint(const std::string& input, const std::string& output, const ConvertOptions& options);

}  // namespace lit
