// Opening the files the program reads. Only a regular file is accepted where a file is expected: a FIFO, a
// device, a socket or a folder is refused at open, before anything is read (a FIFO would block forever, a
// device such as /dev/zero never ends). Every reader opens its input through here.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace lit {

// An open, regular, readable file: its descriptor (closed by the destructor) and its size at open.
class InputFile {
 public:
  // Throws lit::Error "<path>: cannot open: <reason>" or "<path>: not a regular file (a FIFO)".
  explicit InputFile(const std::string& path);
  ~InputFile();
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  InputFile(InputFile&& other) noexcept;
  InputFile& operator=(InputFile&&) = delete;

  int fd() const { return fd_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Hands the descriptor over (the caller closes it).
  int release();
  // The descriptor as a stdio stream (which then owns it); throws lit::Error.
  std::FILE* release_to_stdio();

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// Opens and closes the file: throws the same errors as InputFile; returns its size. For readers whose library
// opens the file itself by name (libzip, zlib).
uint64_t check_input_file(const std::string& path);

// The whole file, refused (before anything is allocated) when larger than max_bytes. Throws lit::Error.
std::string read_input_file(const std::string& path, uint64_t max_bytes);

// What a file of this st_mode is, in words: "a FIFO", "a folder", "a character device", ...
std::string file_type_name(unsigned mode);

}  // namespace lit
