// TorchFile: a torch.save file opened for reading, in either of its two layouts:
//   zip (torch.save's default since PyTorch 1.6): "<prefix>/data.pkl" holds the object pickle and each tensor
//     storage is the raw little-endian entry "<prefix>/data/<key>" (torch_zip.cpp);
//   legacy: five pickles in a row (magic number, protocol 1001, sys_info, the objects, the list of storage keys)
//     followed by each storage as an 8-byte little-endian element count and its raw data (torch_legacy.cpp).
// The object tree comes from the restricted unpickler (torch_pickle.h); storages are read only when a tensor
// is asked for, so taking "ema" from a training checkpoint never reads "model" or the optimizer state.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "weights/checkpoint_format.h"
#include "weights/torch/torch_pickle.h"

namespace lit {

// The state dict chosen from a torch.save file: tensor records by name, in pickle order.
struct TorchStateDict {
  std::vector<std::pair<std::string, const PickleValue*>> tensors;
  std::string weights_key;                  // "" for a plain state dict
  std::vector<std::string> top_level_keys;  // a training checkpoint's keys
};

class TorchFile {
 public:
  // format: CheckpointFormat::TorchZip or TorchLegacy. Throws lit::Error.
  static std::unique_ptr<TorchFile> open(const std::string& path, CheckpointFormat format);
  virtual ~TorchFile();

  const std::string& path() const { return path_; }
  CheckpointFormat format() const { return format_; }
  const PickleValue& root() const { return *doc_.root(); }

  // A plain state dict as is; from a training checkpoint the dict under use_weights (see load_checkpoint).
  TorchStateDict select_state_dict(const std::string& use_weights) const;

  // Checks a tensor record against the real size of its storage; reads no data.
  void check_tensor(const PickleValue& record, const std::string& name);
  // The tensor as a contiguous CPU tensor: a view of its storage when it spans all of it, else a copy.
  at::Tensor tensor(const PickleValue& record, const std::string& name);

 protected:
  TorchFile(std::string path, CheckpointFormat format) : path_(std::move(path)), format_(format) {}
  // Size in bytes of the storage `key` (throws lit::Error naming `tensor` if it is missing) and its data.
  virtual uint64_t storage_bytes(const std::string& key, const std::string& tensor) = 0;
  virtual void read_storage(const std::string& key, void* dst, uint64_t bytes) = 0;

  std::string path_;
  CheckpointFormat format_;
  PickleDocument doc_;

 private:
  std::map<std::pair<std::string, at::ScalarType>, at::Tensor> storages_;  // read so far
};

// The legacy format's first pickle: PROTO 2, LONG1 of 10 bytes (the magic number 0x1950a86a20f9469cfc6c,
// little-endian), STOP.
extern const unsigned char kTorchLegacyMagic[15];

std::unique_ptr<TorchFile> open_torch_zip(const std::string& path);
std::unique_ptr<TorchFile> open_torch_legacy(const std::string& path);

}  // namespace lit
