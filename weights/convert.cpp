#include "weights/convert.h"

#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/format.h"
#include "common/input_file.h"

namespace lit {

at::ScalarType parse_float_dtype(const std::string& name) {
  if (const auto dtype = dtype_from_name(name)) return *dtype;
  throw Error("unknown dtype '" + name + "' (expected fp32, fp16 or bf16)");
}

StateDict cast_floating(const StateDict& tensors, at::ScalarType type) {
  StateDict out;
  for (const auto& [name, t] : tensors) out.insert(name, at::isFloatingType(t.scalar_type()) ? t.to(type) : t);
  return out;
}

ConvertResult convert_checkpoint(const std::string& input, const std::string& output, const ConvertOptions& options) {
  ConvertResult result;
  std::string config;
  if (!options.config_path.empty()) {
    config = read_input_file(options.config_path, uint64_t(16) << 20);
    check_config_json(config, options.config_path);
    result.config_source = options.config_path;
  }
  LoadedCheckpoint loaded = load_checkpoint(input, options.use_weights);
  if (options.config_path.empty()) config = checkpoint_config_json(input, loaded.metadata, &result.config_source);
  std::map<std::string, std::string> metadata = loaded.metadata;
  metadata.erase("config");
  for (const auto& [key, value] : options.metadata) {
    if (key == "config") throw Error("convert: set the model config with a config file, not as metadata");
    metadata[key] = value;
  }
  const StateDict tensors = options.dtype ? cast_floating(loaded.tensors, *options.dtype) : loaded.tensors;
  save_checkpoint(output, tensors, config, metadata);
  result.input_format = loaded.format;
  result.weights_key = loaded.weights_key;
  result.tensor_count = tensors.size();
  result.parameter_count = parameter_count(tensors);
  return result;
}

}  // namespace lit
