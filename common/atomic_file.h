// AtomicFile: write a file under a temporary name in the same folder and rename it into place only when
// every byte reached the disk, so a crash, a full disk or an exception never leaves a half-written file
// under the final name. The temporary is "<path>.tmp-<pid>-<random>", created with O_CREAT|O_EXCL|O_NOFOLLOW:
// a file or symbolic link planted under any name it could take makes it pick another name, never redirects
// the write. After the rename the folder is fsynced too, so the new name survives a power cut.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>

namespace lit {

class AtomicFile {
 public:
  explicit AtomicFile(std::string path);  // creates the temporary (see above); throws lit::Error
  ~AtomicFile();                          // removes the temporary file unless commit() succeeded
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  void write(const void* data, size_t size);  // throws lit::Error (e.g. "No space left on device")
  void commit();                              // flush, fsync, close, rename over the final path
  // The same without the two fsyncs (file and folder): still atomic (no half-written file under the final
  // name), but durable only once the caller syncs, e.g. sync_file_system() after a whole folder of files.
  void commit_unsynced();

  const std::string& path() const { return path_; }

 private:
  [[noreturn]] void fail(const std::string& what);
  void finish(bool sync);

  std::string path_;
  std::string tmp_path_;
  std::FILE* file_ = nullptr;
  bool committed_ = false;
};

// AtomicPath: the same promise for writers that need a path rather than a stream (libzip writes the archive
// itself on zip_close). temp_path() lies in a private folder "<path>.tmp-XXXXXX" (mkdtemp: created new, mode
// 0700), so nothing can be planted under it. Write to temp_path(), then commit() fsyncs it and renames it over
// the final path; the destructor removes the temporary and its folder unless commit() succeeded.
// syncfs(2) of the file system holding path: one call makes every file written there durable (a data set of
// thousands of files written with commit_unsynced, then renamed into place as a folder). Throws lit::Error.
void sync_file_system(const std::string& path);

class AtomicPath {
 public:
  explicit AtomicPath(std::string path);  // creates the private folder; throws lit::Error
  ~AtomicPath();
  AtomicPath(const AtomicPath&) = delete;
  AtomicPath& operator=(const AtomicPath&) = delete;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_path_; }
  void commit();  // throws lit::Error

 private:
  std::string path_;
  std::string tmp_dir_;
  std::string tmp_path_;
  bool committed_ = false;
};

// fsyncs the folder that holds `path` (after a rename into it); errors are ignored (some file systems refuse).
void sync_parent_folder(const std::string& path);

// Removes a file or a folder with everything under it (symbolic links are removed, never followed). Returns
// false and sets *error on failure; a path that does not exist is not an error. Used instead of
// std::filesystem::remove_all, which crashed on non-empty folders in the GCC 13 build on the GPU machine.
bool remove_tree(const std::string& path, std::string* error = nullptr);

}  // namespace lit
