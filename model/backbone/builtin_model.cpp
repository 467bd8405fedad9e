#include "model/backbone/builtin_model.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/error.h"

#ifndef LIT_SOURCE_DIR
#define LIT_SOURCE_DIR "."
#endif

namespace lit {
namespace {

constexpr const char* kFileName = "lit-fmnist.safetensors";

std::string program_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return std::filesystem::path(buf).parent_path().string();
}

}  // namespace

std::vector<std::string> builtin_model_candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("LIT_BUILTIN_MODEL"); env && *env) out.emplace_back(env);
  if (const std::string dir = program_dir(); !dir.empty()) out.push_back(dir + "/../share/lit/" + kFileName);
  out.push_back(std::string(LIT_SOURCE_DIR) + "/model/builtin/" + kFileName);
  return out;
}

std::optional<std::string> find_builtin_model() {
  for (const std::string& path : builtin_model_candidates()) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) return std::filesystem::path(path).lexically_normal().string();
  }
  return std::nullopt;
}

std::string builtin_model_path() {
  if (auto path = find_builtin_model()) return *path;
  std::string where;
  for (const std::string& path : builtin_model_candidates()) where += (where.empty() ? "" : ", ") + path;
  throw Error("the built-in model is not installed (looked in " + where + "); pass --model FILE");
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace lit
