#include "weights/safetensors_folder.h"

#include <sys/stat.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"

namespace lit {
namespace {

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

SafetensorsFolder SafetensorsFolder::open(const std::string& folder, const std::string& stem) {
  SafetensorsFolder out;
  out.folder_ = folder;
  const std::string single = folder + "/" + stem + ".safetensors";
  const std::string index = single + ".index.json";
  if (is_file(single)) {
    const auto file = std::make_shared<SafetensorsFile>(SafetensorsFile::open(single));
    for (const auto& e : file->entries()) out.file_of_[e.name] = single;
    out.files_[single] = file;
    out.listing_ = single;
    return out;
  }
  if (!is_file(index))
    throw Error(folder + ": no " + stem + ".safetensors and no " + stem +
                ".safetensors.index.json (only safetensors weights are read)");
  out.index_path_ = index;
  out.listing_ = index;
  nlohmann::json j;
  try {
    std::ifstream in(index);
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(index + ": not valid JSON (" + e.what() + ")");
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    throw Error(index + ": no \"weight_map\" object (tensor name -> shard file)");
  for (const auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string()) throw Error(index + ": weight_map entry '" + name + "' is not a file name");
    const std::string file = shard.get<std::string>();
    if (file.empty() || file.find('/') != std::string::npos || file == "..")
      throw Error(index + ": weight_map entry '" + name + "' names '" + file + "', not a file beside the index");
    out.file_of_[name] = folder + "/" + file;
  }
  return out;
}

std::vector<std::string> SafetensorsFolder::names() const {
  std::vector<std::string> out;
  out.reserve(file_of_.size());
  for (const auto& [name, file] : file_of_) out.push_back(name);
  return out;
}

const std::string& SafetensorsFolder::file_of(const std::string& name) const {
  auto it = file_of_.find(name);
  if (it == file_of_.end()) throw Error(listing_ + ": no tensor '" + name + "'");
  return it->second;
}

const SafetensorsFile& SafetensorsFolder::file(const std::string& path) const {
  auto it = files_.find(path);
  if (it != files_.end()) return *it->second;
  if (!is_file(path)) throw Error(path + ": missing shard (" + index_path_ + " lists it)");
  auto opened = std::make_shared<SafetensorsFile>(SafetensorsFile::open(path));
  return *files_.emplace(path, std::move(opened)).first->second;
}

const SafetensorsEntry& SafetensorsFolder::entry(const std::string& name) const {
  const SafetensorsFile& f = file(file_of(name));
  if (!f.contains(name))
    throw Error(f.path() + ": no tensor '" + name + "', although " + index_path_ + " says this shard holds it");
  return f.entry(name);
}

at::Tensor SafetensorsFolder::tensor(const std::string& name) const {
  entry(name);  // the checks above
  return file(file_of(name)).tensor(name);
}

}  // namespace lit
