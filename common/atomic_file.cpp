#include "common/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/error.h"

namespace lit {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_path_ = path_ + ".tmp-" + std::to_string(::getpid());
  file_ = std::fopen(tmp_path_.c_str(), "wb");
  if (!file_) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
  if (!committed_) std::remove(tmp_path_.c_str());
}

void AtomicFile::fail(const std::string& what) {
  const int err = errno;
  if (file_) std::fclose(file_);
  file_ = nullptr;
  std::remove(tmp_path_.c_str());
  throw Error("cannot write " + path_ + ": " + what + (err ? std::string(": ") + std::strerror(err) : ""));
}

void AtomicFile::write(const void* data, size_t size) {
  if (!file_) throw Error("cannot write " + path_ + ": file already closed");
  errno = 0;
  if (size > 0 && std::fwrite(data, 1, size, file_) != size) fail("write failed");
}

void AtomicFile::commit() {
  if (!file_) throw Error("cannot write " + path_ + ": file already closed");
  errno = 0;
  if (std::fflush(file_) != 0) fail("flush failed");
  if (::fsync(::fileno(file_)) != 0) fail("fsync failed");
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) fail("close failed");
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) fail("rename failed");
  committed_ = true;
}

AtomicPath::AtomicPath(std::string path) : path_(std::move(path)) {
  tmp_path_ = path_ + ".tmp-" + std::to_string(::getpid());
}

AtomicPath::~AtomicPath() {
  if (!committed_) std::remove(tmp_path_.c_str());
}

void AtomicPath::commit() {
  auto fail = [&](const std::string& what) {
    const int err = errno;
    std::remove(tmp_path_.c_str());
    throw Error("cannot write " + path_ + ": " + what + ": " + std::strerror(err));
  };
  const int fd = ::open(tmp_path_.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot reopen the temporary file");
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("fsync failed");
  }
  ::close(fd);
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) fail("rename failed");
  committed_ = true;
}

namespace {

bool removal_failed(const std::string& path, std::string* error) {
  if (error) *error = path + ": " + std::strerror(errno);
  return false;
}

}  // namespace

bool remove_tree(const std::string& path, std::string* error) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return errno == ENOENT || removal_failed(path, error);
  if (!S_ISDIR(st.st_mode)) return ::unlink(path.c_str()) == 0 || errno == ENOENT || removal_failed(path, error);
  std::vector<std::string> names;
  DIR* dir = ::opendir(path.c_str());
  if (!dir) return removal_failed(path, error);
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  for (const std::string& name : names)
    if (!remove_tree(path + "/" + name, error)) return false;
  return ::rmdir(path.c_str()) == 0 || errno == ENOENT || removal_failed(path, error);
}

}  // namespace lit
