// The legacy torch.save layout (PyTorch < 1.6, or _use_new_zipfile_serialization=False), memory-mapped:
//   pickle 1: the magic number 0x1950a86a20f9469cfc6c   pickle 2: the protocol version, 1001
//   pickle 3: sys_info {protocol_version, little_endian, type_sizes}
//   pickle 4: the objects, storages as persistent ids ('storage', type, key, location, numel, view_metadata)
//   pickle 5: the storage keys in the order their data follows
//   then per key: an 8-byte little-endian element count and count * element-size bytes of little-endian data.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "common/error.h"
#include "common/input_file.h"
#include "weights/torch/torch_file.h"

namespace lit {

const unsigned char kTorchLegacyMagic[15] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46,
                                             0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e};

namespace {

using Kind = PickleValue::Kind;

class TorchLegacyFile : public TorchFile {
 public:
  explicit TorchLegacyFile(const std::string& path) : TorchFile(path, CheckpointFormat::TorchLegacy) {
    map_file();
    const auto* bytes = static_cast<const unsigned char*>(map_.data);
    const size_t file_size = map_.size;
    if (file_size < sizeof kTorchLegacyMagic || std::memcmp(bytes, kTorchLegacyMagic, sizeof kTorchLegacyMagic) != 0)
      throw Error(path + ": not a legacy torch.save file (no magic number)");
    size_t pos = sizeof kTorchLegacyMagic;
    auto next_pickle = [&](const char* what) {
      PickleDocument doc = parse_torch_pickle(bytes + pos, file_size - pos, path + ": " + what);
      pos += doc.bytes_used();
      return doc;
    };
    const PickleDocument protocol = next_pickle("legacy protocol pickle");
    if (!protocol.root()->is(Kind::Int) || protocol.root()->integer != 1001)
      throw Error(path + ": unsupported legacy torch.save protocol (expected 1001)");
    const PickleDocument sys_info = next_pickle("legacy sys_info pickle");
    if (!sys_info.root()->is(Kind::Dict)) throw Error(path + ": corrupt legacy sys_info (not a dict)");
    if (const PickleValue* little = sys_info.root()->dict_find("little_endian"))
      if (!little->is(Kind::Bool) || !little->integer)
        throw Error(path + ": saved on a big-endian machine (only little-endian is supported)");
    doc_ = next_pickle("legacy object pickle");
    const PickleDocument keys = next_pickle("legacy storage-key pickle");
    if (!keys.root()->is(Kind::List)) throw Error(path + ": corrupt legacy storage-key list");
    index_storages(*keys.root(), pos);
  }

 protected:
  uint64_t storage_bytes(const std::string& key, const std::string& tensor) override {
    auto it = storages_.find(key);
    if (it == storages_.end())
      throw Error(path_ + ": tensor '" + tensor + "' uses storage '" + key + "', missing from the file");
    return it->second.second;
  }
  void read_storage(const std::string& key, void* dst, uint64_t bytes) override {
    const auto& [offset, size] = storages_.at(key);
    std::memcpy(dst, static_cast<const unsigned char*>(map_.data) + offset, std::min(bytes, size));
  }

 private:
  void map_file() {
    InputFile input(path_);  // regular files only
    const int fd = input.fd();
    const auto size = static_cast<size_t>(input.size());
    if (size > 0) {
      void* data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (data == MAP_FAILED) {
        throw Error(path_ + ": cannot map: " + std::strerror(errno));
      }
      map_.data = data;
      map_.size = size;
    }
  }

  // Walks the storage records after the pickles: each key's element count, then its data. The element size
  // comes from the storage type the object pickle gave that key.
  void index_storages(const PickleValue& keys, size_t pos) {
    std::unordered_map<std::string, uint64_t> element_size;
    for (const PickleValue* s : doc_.storages()) {
      const uint64_t size = c10::elementSize(s->dtype);
      auto [it, fresh] = element_size.emplace(s->text, size);
      if (!fresh && it->second != size)
        throw Error(path_ + ": storage '" + s->text + "' is used with two different element sizes");
    }
    const auto* bytes = static_cast<const unsigned char*>(map_.data);
    const size_t file_size = map_.size;
    for (const PickleValue* key : keys.items) {
      if (!key->is(Kind::String)) throw Error(path_ + ": corrupt legacy storage-key list (a key is not a string)");
      auto element = element_size.find(key->text);
      if (element == element_size.end())
        throw Error(path_ + ": storage '" + key->text + "' is listed but no tensor uses it");
      if (file_size - pos < 8)
        throw Error(path_ + ": truncated: storage '" + key->text + "' has no element count (file ends at byte " +
                    std::to_string(file_size) + ")");
      uint64_t count = 0;
      for (int i = 7; i >= 0; --i) count = (count << 8) | bytes[pos + static_cast<size_t>(i)];
      pos += 8;
      if (count > (file_size - pos) / element->second)
        throw Error(path_ + ": truncated: storage '" + key->text + "' needs " + std::to_string(count) + " x " +
                    std::to_string(element->second) + " bytes, " + std::to_string(file_size - pos) +
                    " left in the file");
      const uint64_t n = count * element->second;
      if (!storages_.emplace(key->text, std::make_pair(uint64_t(pos), n)).second)
        throw Error(path_ + ": storage '" + key->text + "' is listed twice");
      pos += static_cast<size_t>(n);
    }
  }

  struct Mapping {
    void* data = nullptr;
    size_t size = 0;
    ~Mapping() {
      if (data) ::munmap(data, size);
    }
  } map_;  // a member, so that it is unmapped even when the constructor throws
  std::unordered_map<std::string, std::pair<uint64_t, uint64_t>> storages_;  // key -> (offset, bytes)
};

}  // namespace

std::unique_ptr<TorchFile> open_torch_legacy(const std::string& path) {
  return std::make_unique<TorchLegacyFile>(path);
}

}  // namespace lit
