// SafetensorsFile: the safetensors format (an 8-byte little-endian header length, a JSON header naming
// each tensor's dtype, shape and byte range, then the raw data), memory-mapped and bounds-checked.
// Tensors returned by tensor() are zero-copy views of the mapping (copy-on-write: writing to them never
// touches the file) and keep the mapping alive.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace lit {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as written in the file: "F32", "F16", "BF16", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates the file; throws lit::Error naming the file and the problem.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // Entries in file order (by data offset).
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  const SafetensorsEntry& entry(const std::string& name) const;  // throws lit::Error if absent
  at::Tensor tensor(const std::string& name) const;              // throws lit::Error if absent
  // All tensors, in file order.
  std::vector<std::pair<std::string, at::Tensor>> tensors() const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> mapping_;
  uint64_t data_offset_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// True when the first bytes of the file look like a safetensors header (used to sniff formats).
bool looks_like_safetensors(const std::string& path);

// Writes tensors (any device or layout; stored contiguous, on the CPU) and string metadata, atomically.
// Names must be unique. Throws lit::Error.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// The safetensors dtype name of a scalar type and back ("F32" <-> at::kFloat ...); throws lit::Error.
std::string safetensors_dtype_name(at::ScalarType type);
at::ScalarType safetensors_scalar_type(const std::string& dtype);

}  // namespace lit
