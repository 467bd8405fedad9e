#include "common/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace lit {

std::string file_type_name(unsigned mode) {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "a regular file";
    case S_IFDIR:
      return "a folder";
    case S_IFIFO:
      return "a FIFO";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFSOCK:
      return "a socket";
    default:
      return "not a regular file";
  }
}

InputFile::InputFile(const std::string& path) : path_(path) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer; the type is checked next.
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd_ < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw Error(path + ": cannot open: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    throw Error(path + ": not a regular file (it is " + file_type_name(st.st_mode) + ")");
  }
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags >= 0) ::fcntl(fd_, F_SETFL, flags & ~O_NONBLOCK);
  size_ = static_cast<uint64_t>(st.st_size);
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

InputFile::InputFile(InputFile&& other) noexcept : path_(std::move(other.path_)), fd_(other.fd_), size_(other.size_) {
  other.fd_ = -1;
}

int InputFile::release() {
  const int fd = fd_;
  fd_ = -1;
  return fd;
}

std::FILE* InputFile::release_to_stdio() {
  std::FILE* f = ::fdopen(fd_, "rb");
  if (!f) throw Error(path_ + ": cannot open: " + std::strerror(errno));
  fd_ = -1;
  return f;
}

uint64_t check_input_file(const std::string& path) {
  return InputFile(path).size();
}

std::string read_input_file(const std::string& path, uint64_t max_bytes) {
  InputFile file(path);
  if (file.size() > max_bytes)
    throw Error(path + ": " + std::to_string(file.size()) + " bytes, more than the " + std::to_string(max_bytes) +
                " accepted for this kind of file");
  std::string out(static_cast<size_t>(file.size()), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t got = ::read(file.fd(), out.data() + done, out.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw Error(path + ": read failed: " + std::strerror(errno));
    if (got == 0) break;  // shrank while reading
    done += static_cast<size_t>(got);
  }
  out.resize(done);
  return out;
}

}  // namespace lit
