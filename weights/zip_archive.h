// ZipReader / ZipWriter: the zip container of PyTorch checkpoints (torch.save) and NumPy .npz files, over
// libzip. Only the two methods those writers use are accepted, stored and deflate, which lets every entry's
// size be checked against the file before anything is allocated (a deflate stream expands at most ~1032x).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace lit {

class ZipReader {
 public:
  // Opens and validates the archive's directory; throws lit::Error naming the file and the problem.
  explicit ZipReader(const std::string& path);
  ~ZipReader();
  ZipReader(const ZipReader&) = delete;
  ZipReader& operator=(const ZipReader&) = delete;

  const std::string& path() const { return path_; }
  size_t size() const { return names_.size(); }
  const std::string& name(size_t index) const { return names_.at(index); }
  std::optional<size_t> find(const std::string& name) const;
  // Uncompressed size; throws lit::Error if the entry is unreadable (method) or its size is impossible.
  uint64_t entry_size(size_t index) const;

  // Reads a whole entry, refusing one larger than max_bytes.
  std::string read(size_t index, uint64_t max_bytes) const;

  // Sequential reads of one entry, for contents streamed straight into their final buffer.
  class Stream {
   public:
    ~Stream();
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;
    Stream(Stream&& other) noexcept;
    Stream& operator=(Stream&&) = delete;
    // Reads exactly n bytes; throws lit::Error if the entry ends first or its data is corrupt.
    void read(void* dst, uint64_t n);
    // Checks that the entry has no bytes left and that its CRC matches; throws lit::Error otherwise.
    void finish();
    uint64_t remaining() const { return size_ - position_; }

   private:
    friend class ZipReader;
    Stream(void* file, std::string what, uint64_t size) : file_(file), what_(std::move(what)), size_(size) {}
    void* file_;  // zip_file_t*
    std::string what_;
    uint64_t size_;
    uint64_t position_ = 0;
  };
  Stream open(size_t index) const;

 private:
  void check_entry(size_t index) const;

  std::string path_;
  uint64_t file_size_ = 0;
  void* archive_ = nullptr;  // zip_t*
  std::vector<std::string> names_;
  std::vector<uint64_t> sizes_;
  std::unordered_map<std::string, size_t> index_;  // first entry of each name
};

// Writes a zip archive atomically: nothing appears under the final path until commit() succeeded.
class ZipWriter {
 public:
  explicit ZipWriter(std::string path);  // throws lit::Error
  ~ZipWriter();                          // discards an uncommitted archive
  ZipWriter(const ZipWriter&) = delete;
  ZipWriter& operator=(const ZipWriter&) = delete;

  // Adds an entry whose content is the concatenation of parts (pointer, size). The memory must stay valid
  // until commit(): libzip reads it only then. compress: deflate, else stored.
  void add(const std::string& name, const std::vector<std::pair<const void*, size_t>>& parts, bool compress);
  // Adds an entry whose content is a file on disk, read only at commit() (so entries larger than memory can
  // be written). The file must stay in place until then.
  void add_file(const std::string& name, const std::string& source_path, bool compress);
  void commit();  // writes the archive, fsyncs it and renames it into place; throws lit::Error

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lit
