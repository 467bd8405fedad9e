#include "common/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "common/error.h"

namespace lit {

namespace {

std::string folder_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string random_suffix() {
  static thread_local std::mt19937_64 rng(
      std::random_device{}() ^ (uint64_t(::getpid()) << 32) ^
      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char buf[24];
  std::snprintf(buf, sizeof buf, "%012llx", static_cast<unsigned long long>(rng() & 0xffffffffffffULL));
  return buf;
}

}  // namespace

void sync_parent_folder(const std::string& path) {
  const int fd = ::open(folder_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp_path_ = path_ + ".tmp-" + std::to_string(::getpid()) + "-" + random_suffix();
    // O_EXCL|O_NOFOLLOW: a name that exists in any form (a planted symbolic link included) is never opened.
    const int fd = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
    file_ = ::fdopen(fd, "wb");
    if (!file_) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp_path_.c_str());
      throw Error("cannot write " + path_ + ": " + std::strerror(err));
    }
    return;
  }
  throw Error("cannot write " + path_ + ": no free temporary name beside it");
}

AtomicFile::~AtomicFile() {
  if (file_) std::fclose(file_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFile::fail(const std::string& what) {
  const int err = errno;
  if (file_) std::fclose(file_);
  file_ = nullptr;
  ::unlink(tmp_path_.c_str());
  throw Error("cannot write " + path_ + ": " + what + (err ? std::string(": ") + std::strerror(err) : ""));
}

void AtomicFile::write(const void* data, size_t size) {
  if (!file_) throw Error("cannot write " + path_ + ": file already closed");
  errno = 0;
  if (size > 0 && std::fwrite(data, 1, size, file_) != size) fail("write failed");
}

void AtomicFile::commit() {
  finish(true);
}

void AtomicFile::commit_unsynced() {
  finish(false);
}

void AtomicFile::finish(bool sync) {
  if (!file_) throw Error("cannot write " + path_ + ": file already closed");
  errno = 0;
  if (std::fflush(file_) != 0) fail("flush failed");
  if (sync && ::fsync(::fileno(file_)) != 0) fail("fsync failed");
  const int rc = std::fclose(file_);
  file_ = nullptr;
  if (rc != 0) fail("close failed");
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) fail("rename failed");
  committed_ = true;
  if (sync) sync_parent_folder(path_);
}

void sync_file_system(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot sync " + path + ": " + std::strerror(errno));
  const int rc = ::syncfs(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw Error("cannot sync " + path + ": " + std::strerror(err));
}

AtomicPath::AtomicPath(std::string path) : path_(std::move(path)) {
  std::string pattern = path_ + ".tmp-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw Error("cannot write " + path_ + ": " + std::strerror(errno));
  tmp_dir_ = pattern;
  const size_t slash = path_.find_last_of('/');
  tmp_path_ = tmp_dir_ + "/" + (slash == std::string::npos ? path_ : path_.substr(slash + 1));
}

AtomicPath::~AtomicPath() {
  if (!committed_) remove_tree(tmp_dir_);
}

void AtomicPath::commit() {
  auto fail = [&](const std::string& what) {
    const int err = errno;
    remove_tree(tmp_dir_);
    throw Error("cannot write " + path_ + ": " + what + ": " + std::strerror(err));
  };
  const int fd = ::open(tmp_path_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) fail("cannot reopen the temporary file");
  if (::fsync(fd) != 0) {
    ::close(fd);
    fail("fsync failed");
  }
  ::close(fd);
  if (std::rename(tmp_path_.c_str(), path_.c_str()) != 0) fail("rename failed");
  committed_ = true;
  remove_tree(tmp_dir_);
  sync_parent_folder(path_);
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
