// SafetensorsFolder: the weights of a Hugging Face model folder as one name -> tensor table, whether they are
// one file (`model.safetensors`) or shards (`model-00001-of-00004.safetensors` ... listed by
// `model.safetensors.index.json`, whose `weight_map` names each tensor's shard). Built on SafetensorsFile:
// every shard is memory-mapped, and a shard is opened only when one of its tensors is asked for, so a
// reader that needs only some tensors (a T5 encoder out of a full encoder-decoder checkpoint) never maps
// the shards it does not need. Tensors are zero-copy views of the mappings.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "weights/safetensors.h"

namespace lit {

class SafetensorsFolder {
 public:
  // Opens `<folder>/<stem>.safetensors` if it exists, else `<folder>/<stem>.safetensors.index.json`. Throws
  // lit::Error naming the folder when neither exists, or the index when it is not a valid index.
  static SafetensorsFolder open(const std::string& folder, const std::string& stem = "model");

  const std::string& folder() const { return folder_; }
  bool sharded() const { return !index_path_.empty(); }
  const std::string& index_path() const { return index_path_; }  // empty for one file
  // Tensor names (sorted).
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return file_of_.count(name) != 0; }
  // The file (full path) that holds a tensor; throws lit::Error if no file does.
  const std::string& file_of(const std::string& name) const;
  // The tensor's entry (dtype, shape) from its file's header; maps the shard if needed. Throws lit::Error
  // naming the shard when it is missing, unreadable, or does not hold the tensor the index says it does.
  const SafetensorsEntry& entry(const std::string& name) const;
  at::Tensor tensor(const std::string& name) const;

 private:
  const SafetensorsFile& file(const std::string& path) const;

  std::string folder_;
  std::string index_path_;
  std::string listing_;                         // the file that lists the tensors: the single file or the index
  std::map<std::string, std::string> file_of_;  // tensor -> full path of its file
  mutable std::map<std::string, std::shared_ptr<SafetensorsFile>> files_;  // opened on demand (not thread-safe)
};

}  // namespace lit
