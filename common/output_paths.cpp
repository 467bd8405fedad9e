#include "common/output_paths.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <random>

#include "common/error.h"

namespace lit {
namespace fs = std::filesystem;

namespace {

std::string resolved(const std::string& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  return ec ? fs::path(path).lexically_normal().string() : p.string();
}

std::string folder_of(const std::string& path) {
  const fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? "." : parent.string();
}

}  // namespace

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  if (::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0)
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  return resolved(a) == resolved(b);
}

void check_outputs_distinct(const NamedPaths& outputs, const NamedPaths& inputs) {
  for (size_t i = 0; i < outputs.size(); ++i) {
    const auto& [option, path] = outputs[i];
    if (path.empty()) continue;
    for (const auto& [in_option, in_path] : inputs)
      if (!in_path.empty() && same_file(path, in_path))
        throw Error(option + " " + path + ": is the input " + in_option + " " + in_path +
                    " (writing it would destroy the input)");
    for (size_t j = 0; j < i; ++j)
      if (!outputs[j].second.empty() && same_file(path, outputs[j].second))
        throw Error(option + " " + path + ": is the same file as " + outputs[j].first + " " + outputs[j].second);
  }
}

void check_output_writable(const std::string& option, const std::string& path, bool create_folders) {
  const std::string what = option.empty() ? path : option + " " + path;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) throw Error(what + ": is a folder, not a file name");
  const std::string folder = folder_of(path);
  if (create_folders) {
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw Error(what + ": cannot create the folder " + folder + ": " + ec.message());
  }
  if (::stat(folder.c_str(), &st) != 0)
    throw Error(what + ": cannot write into " + folder + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw Error(what + ": " + folder + " is not a folder");
  // access(W_OK) says yes to root on a read-only file system; creating a file is the real test.
  std::random_device rd;
  for (int attempt = 0; attempt < 16; ++attempt) {
    const std::string probe = folder + "/.lit-probe-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
      ::close(fd);
      ::unlink(probe.c_str());
      return;
    }
    if (errno != EEXIST) throw Error(what + ": cannot write into " + folder + ": " + std::strerror(errno));
  }
  throw Error(what + ": cannot write into " + folder + ": no free temporary name");
}

}  // namespace lit
