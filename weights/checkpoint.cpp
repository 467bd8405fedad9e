#include "weights/checkpoint.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/input_file.h"
#include "weights/safetensors.h"
#include "weights/torch/torch_file.h"

namespace lit {

namespace {
constexpr uint64_t kMaxConfigBytes = uint64_t(16) << 20;  // a config.json beside a checkpoint
}  // namespace

const char* checkpoint_format_name(CheckpointFormat format) {
  switch (format) {
    case CheckpointFormat::Safetensors:
      return "safetensors";
    case CheckpointFormat::TorchZip:
      return "torch zip";
    case CheckpointFormat::TorchLegacy:
      return "torch legacy";
  }
  return "unknown";
}

CheckpointFormat detect_checkpoint_format(const std::string& path) {
  const InputFile in(path);  // regular files only: a FIFO or a device is refused, never read
  unsigned char head[sizeof kTorchLegacyMagic] = {};
  const ssize_t read = ::pread(in.fd(), head, sizeof head, 0);
  const auto got = static_cast<size_t>(read < 0 ? 0 : read);
  if (got >= 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return CheckpointFormat::TorchZip;
  if (got == sizeof head && std::memcmp(head, kTorchLegacyMagic, sizeof head) == 0)
    return CheckpointFormat::TorchLegacy;
  if (looks_like_safetensors(path)) return CheckpointFormat::Safetensors;
  throw Error(path +
              ": not a recognised checkpoint format (expected safetensors, a torch.save zip .pt, or a legacy "
              "torch.save file)");
}

LoadedCheckpoint load_checkpoint(const std::string& path, const std::string& use_weights) {
  LoadedCheckpoint out;
  out.format = detect_checkpoint_format(path);
  if (out.format == CheckpointFormat::Safetensors) {
    const SafetensorsFile file = SafetensorsFile::open(path);
    for (auto& [name, tensor] : file.tensors()) out.tensors.insert(name, std::move(tensor));
    out.metadata = file.metadata();
    return out;
  }
  auto file = TorchFile::open(path, out.format);
  const TorchStateDict chosen = file->select_state_dict(use_weights);
  out.weights_key = chosen.weights_key;
  out.top_level_keys = chosen.top_level_keys;
  for (const auto& [name, record] : chosen.tensors) {
    if (out.tensors.contains(name)) throw Error(path + ": tensor name '" + name + "' appears twice");
    out.tensors.insert(name, file->tensor(*record, name));
  }
  return out;
}

CheckpointInfo read_checkpoint_info(const std::string& path, const std::string& use_weights) {
  CheckpointInfo out;
  out.format = detect_checkpoint_format(path);
  if (out.format == CheckpointFormat::Safetensors) {
    const SafetensorsFile file = SafetensorsFile::open(path);
    for (const auto& e : file.entries()) out.tensors.push_back({e.name, safetensors_scalar_type(e.dtype), e.shape});
    out.metadata = file.metadata();
    return out;
  }
  auto file = TorchFile::open(path, out.format);
  const TorchStateDict chosen = file->select_state_dict(use_weights);
  out.weights_key = chosen.weights_key;
  out.top_level_keys = chosen.top_level_keys;
  for (const auto& [name, record] : chosen.tensors) {
    file->check_tensor(*record, name);
    out.tensors.push_back({name, record->tensor_storage()->dtype, record->sizes});
  }
  return out;
}

uint64_t parameter_count(const StateDict& tensors) {
  uint64_t n = 0;
  for (const auto& item : tensors) n += static_cast<uint64_t>(item.second.numel());
  return n;
}

uint64_t parameter_count(const std::vector<TensorInfo>& tensors) {
  uint64_t n = 0;
  for (const auto& t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    n += numel;
  }
  return n;
}

void check_config_json(const std::string& text, const std::string& what) {
  nlohmann::json parsed;
  try {
    parsed = nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // Not e.what(): it quotes the offending bytes, which may be binary.
    throw Error(what + ": not valid JSON (parse error at byte " + std::to_string(e.byte) + ")");
  }
  if (!parsed.is_object()) throw Error(what + ": the model config must be a JSON object");
}

std::string checkpoint_config_json(const std::string& path, const std::map<std::string, std::string>& metadata,
                                   std::string* source) {
  if (source) source->clear();
  auto it = metadata.find("config");
  if (it != metadata.end()) {
    check_config_json(it->second, path + ": metadata 'config'");
    if (source) *source = "metadata";
    return it->second;
  }
  const size_t slash = path.rfind('/');
  const std::string beside = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "config.json";
  struct stat st {};
  if (::stat(beside.c_str(), &st) != 0) return "";
  const std::string text = read_input_file(beside, kMaxConfigBytes);
  check_config_json(text, beside);
  if (source) *source = beside;
  return text;
}

void save_checkpoint(const std::string& path, const StateDict& tensors, const std::string& config_json,
                     std::map<std::string, std::string> metadata) {
  if (!config_json.empty()) {
    check_config_json(config_json, "cannot write " + path + ": config");
    metadata["config"] = config_json;
  }
  write_safetensors(path, tensors.items(), metadata);
}

}  // namespace lit
