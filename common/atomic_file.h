// AtomicFile: write a file under a temporary name in the same folder and rename it into place only when
// every byte reached the disk, so a crash, a full disk or an exception never leaves a half-written file
// under the final name.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace lit {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // opens "<path>.tmp-<pid>" for writing; throws lit::Error
  ~AtomicFile();                          // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);  // throws lit::Error (e.g. "No space left on device")
  void commit();                              // flush, fsync, close, rename over the final path

  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& what);

  std::string path_;
  std::string tmp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// AtomicPath: the same promise for writers that need a path rather than a stream (libzip writes the archive
// itself on zip_close). Write to temp_path(), then commit() fsyncs it and renames it over the final path; the
// destructor removes the temporary unless commit() succeeded.
class AtomicPath {
 public:
  explicit AtomicPath(std::string path);  // "<path>.tmp-<pid>"; creates nothing yet
  ~AtomicPath();
  AtomicPath(const AtomicPath&) = delete;
  AtomicPath& operator=(const AtomicPath&) = delete;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_path_; }
  void commit();  // throws lit::Error

 private:
  std::string path_;
  std::string tmp_path_;
  bool committed_ = false;
};

// Removes a file or a folder with everything under it (symbolic links are removed, never followed). Returns
// false and sets *error on failure; a path that does not exist is not an error. Used instead of
// std::filesystem::remove_all, which crashed on non-empty folders in the GCC 13 build on the GPU machine.
bool remove_tree(const std::string& path, std::string* error = nullptr);

}  // namespace lit
