// torch.save's zip layout (PyTorch >= 1.6): "<prefix>/data.pkl", "<prefix>/byteorder" (absent before 1.10:
// little-endian), and each storage as the raw entry "<prefix>/data/<key>". PyTorch writes the entries stored
// (uncompressed) and 64-byte aligned; they are still read through libzip, which checks sizes and CRCs.
#include "common/error.h"
#include "weights/torch/torch_file.h"
#include "weights/zip_archive.h"

namespace lit {
namespace {

constexpr uint64_t kMaxPickleBytes = uint64_t(1) << 30;

class TorchZipFile : public TorchFile {
 public:
  explicit TorchZipFile(const std::string& path) : TorchFile(path, CheckpointFormat::TorchZip), zip_(path) {
    // The archive's records live under one folder named after the file that was saved; find its data.pkl.
    std::optional<size_t> pickle;
    for (size_t i = 0; i < zip_.size() && !pickle; ++i) {
      const std::string& name = zip_.name(i);
      const size_t slash = name.find('/');
      if (slash != std::string::npos && name.compare(slash, std::string::npos, "/data.pkl") == 0) {
        prefix_ = name.substr(0, slash + 1);
        pickle = i;
      }
    }
    if (!pickle) throw Error(path + ": zip archive without a data.pkl record: not a torch.save checkpoint");
    if (auto order = zip_.find(prefix_ + "byteorder")) {
      const std::string byteorder = zip_.read(*order, 16);
      if (byteorder != "little")
        throw Error(path + ": tensors stored in '" + byteorder + "' byte order (only little-endian is supported)");
    }
    const std::string bytes = zip_.read(*pickle, kMaxPickleBytes);
    doc_ = parse_torch_pickle(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                              path + ": " + prefix_ + "data.pkl");
  }

 protected:
  uint64_t storage_bytes(const std::string& key, const std::string& tensor) override {
    return zip_.entry_size(entry(key, tensor));
  }
  void read_storage(const std::string& key, void* dst, uint64_t bytes) override {
    ZipReader::Stream stream = zip_.open(entry(key, ""));
    stream.read(dst, bytes);
    stream.finish();
  }

 private:
  size_t entry(const std::string& key, const std::string& tensor) const {
    const std::string name = prefix_ + "data/" + key;
    auto index = zip_.find(name);
    if (!index)
      throw Error(path_ + ": " + (tensor.empty() ? "a tensor" : "tensor '" + tensor + "'") + " uses storage '" + key +
                  "', missing from the archive (no " + name + ")");
    return *index;
  }

  ZipReader zip_;
  std::string prefix_;
};

}  // namespace

std::unique_ptr<TorchFile> open_torch_zip(const std::string& path) {
  return std::make_unique<TorchZipFile>(path);
}

}  // namespace lit
