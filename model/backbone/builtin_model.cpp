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
constexpr const char* kTextFileName = "t2i/lit-t2i.safetensors";  // its T5 folder: t2i/t5
constexpr const char* kTextEncoderFolder = "t5";

std::string program_dir() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return std::filesystem::path(buf).parent_path().string();
}

// The places a shipped file is looked for, first found wins: the environment variable naming the file itself,
// an installed tree (<dir of the program>/../share/lit/NAME), the source tree (model/builtin/NAME).
std::vector<std::string> candidates(const char* env_name, const std::string& name) {
  std::vector<std::string> out;
  if (const char* env = std::getenv(env_name); env && *env) out.emplace_back(env);
  if (const std::string dir = program_dir(); !dir.empty()) out.push_back(dir + "/../share/lit/" + name);
  out.push_back(std::string(LIT_SOURCE_DIR) + "/model/builtin/" + name);
  return out;
}

std::optional<std::string> first_file(const std::vector<std::string>& paths) {
  for (const std::string& path : paths) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(path, ec)) return std::filesystem::path(path).lexically_normal().string();
  }
  return std::nullopt;
}

std::string joined(const std::vector<std::string>& paths) {
  std::string where;
  for (const std::string& path : paths) where += (where.empty() ? "" : ", ") + path;
  return where;
}

std::string text_encoder_beside(const std::string& model) {
  return (std::filesystem::path(model).parent_path() / kTextEncoderFolder).string();
}

bool is_text_encoder_folder(const std::string& dir) {
  std::error_code ec;
  return std::filesystem::is_regular_file(dir + "/config.json", ec);
}

}  // namespace

std::vector<std::string> builtin_model_candidates() {
  return candidates("LIT_BUILTIN_MODEL", kFileName);
}

std::optional<std::string> find_builtin_model() {
  return first_file(builtin_model_candidates());
}

std::string builtin_model_path() {
  if (auto path = find_builtin_model()) return *path;
  throw Error("the built-in model is not installed (looked in " + joined(builtin_model_candidates()) +
              "); pass --model FILE");
}

std::vector<std::string> builtin_text_model_candidates() {
  return candidates("LIT_BUILTIN_TEXT_MODEL", kTextFileName);
}

std::optional<BuiltinTextModel> find_builtin_text_model() {
  const std::optional<std::string> model = first_file(builtin_text_model_candidates());
  if (!model || !is_text_encoder_folder(text_encoder_beside(*model))) return std::nullopt;
  return BuiltinTextModel{*model, text_encoder_beside(*model)};
}

BuiltinTextModel builtin_text_model() {
  if (auto found = find_builtin_text_model()) return *found;
  if (const auto model = first_file(builtin_text_model_candidates()))
    throw Error("the built-in text-to-image model " + *model + " has no T5 folder beside it (" +
                text_encoder_beside(*model) + "/config.json is missing)");
  throw Error("the built-in text-to-image model is not installed (looked in " +
              joined(builtin_text_model_candidates()) + "); pass --model FILE --text-encoder DIR");
}

bool is_builtin_text_model(const std::string& path) {
  const std::optional<BuiltinTextModel> builtin = find_builtin_text_model();
  std::error_code ec;
  return builtin && !path.empty() && std::filesystem::equivalent(path, builtin->model, ec);
}

const std::vector<std::string>& fashion_mnist_class_names() {
  static const std::vector<std::string> names = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                                 "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
  return names;
}

}  // namespace lit
