#include "tools/train/latent_dataset.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"

namespace fs = std::filesystem;

namespace lit::train {

bool is_latent_folder(const std::string& path) {
  return fs::exists(fs::path(path) / "latents.json");
}

LatentFolder::LatentFolder(std::string dir) : dir_(std::move(dir)) {
  const std::string index = dir_ + "/latents.json";
  std::ifstream in(index);
  if (!in) throw Error(index + ": cannot open (not a folder written by lit extract-latents?)");
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    info_.count = j.at("count").get<int64_t>();
    info_.shape = j.at("shape").get<std::vector<int64_t>>();
    info_.classes = j.at("classes").get<std::vector<std::string>>();
    info_.scaling_factor = j.at("scaling_factor").get<double>();
    info_.shift_factor = j.value("shift_factor", 0.0);
    info_.image_size = j.value("image_size", int64_t{0});
    info_.vae = j.value("vae", std::string());
    info_.shards = j.at("shards").get<std::vector<std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(index + ": " + e.what());
  }
  if (info_.shape.size() != 3 || info_.classes.empty()) throw Error(index + ": bad latent shape or no classes");
  int64_t start = 0;
  for (const auto& name : info_.shards) {
    shards_.push_back(SafetensorsFile::open(dir_ + "/" + name));
    shard_start_.push_back(start);
    start += shards_.back().entry("labels").shape.at(0);
  }
  if (start != info_.count)
    throw Error(index + ": the shards hold " + std::to_string(start) + " latents, not " + std::to_string(info_.count));
}

Example LatentFolder::get(int64_t index, uint64_t seed) const {
  const size_t s =
      static_cast<size_t>(std::upper_bound(shard_start_.begin(), shard_start_.end(), index) - shard_start_.begin() - 1);
  const int64_t row = index - shard_start_[s];
  const int64_t flip = static_cast<int64_t>(seed & 1);
  const at::Tensor mean = shards_[s].tensor("mean")[row][flip].to(at::kFloat);
  const at::Tensor logvar = shards_[s].tensor("logvar")[row][flip].to(at::kFloat);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed >> 1);
  const at::Tensor z = mean + (0.5 * logvar).exp() * at::randn(mean.sizes(), gen, at::kFloat);
  return {(z - info_.shift_factor) * info_.scaling_factor, shards_[s].tensor("labels")[row].item<int64_t>()};
}

std::string LatentFolder::description() const {
  return "latents " + dir_ + ", " + std::to_string(info_.count) + " images (" + std::to_string(info_.image_size) +
         " px), " + std::to_string(info_.shape[0]) + "x" + std::to_string(info_.shape[1]) + "x" +
         std::to_string(info_.shape[2]) + ", " + std::to_string(num_classes()) + " classes";
}

std::shared_ptr<LatentFolder> open_latent_folder(const std::string& dir) {
  return std::make_shared<LatentFolder>(dir);
}

// ---------------------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------------------
LatentFolderWriter::LatentFolderWriter(std::string dir, LatentFolderInfo info, int64_t shard_size)
    : dir_(std::move(dir)), info_(std::move(info)), shard_size_(shard_size) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error(dir_ + ": cannot create the latents folder (" + ec.message() + ")");
  fs::remove(fs::path(dir_) / "latents.json", ec);  // the folder is unfinished until finish()
  info_.shards.clear();
}

void LatentFolderWriter::add(const at::Tensor& mean, const at::Tensor& logvar, int64_t label) {
  means_.push_back(mean.to(at::kCPU, at::kHalf));
  logvars_.push_back(logvar.to(at::kCPU, at::kHalf));
  labels_.push_back(label);
  ++count_;
  if (static_cast<int64_t>(labels_.size()) >= shard_size_) flush();
}

void LatentFolderWriter::flush() {
  if (labels_.empty()) return;
  char name[40];
  std::snprintf(name, sizeof name, "shard-%05zu.safetensors", info_.shards.size());
  write_safetensors(
      dir_ + "/" + name,
      {{"mean", at::stack(means_)}, {"logvar", at::stack(logvars_)}, {"labels", at::tensor(labels_, at::kLong)}});
  info_.shards.push_back(name);
  means_.clear();
  logvars_.clear();
  labels_.clear();
}

void LatentFolderWriter::finish() {
  flush();
  const nlohmann::json j = {{"format", "lit-latents"},
                            {"count", count_},
                            {"shape", info_.shape},
                            {"classes", info_.classes},
                            {"scaling_factor", info_.scaling_factor},
                            {"shift_factor", info_.shift_factor},
                            {"image_size", info_.image_size},
                            {"vae", info_.vae},
                            {"shards", info_.shards}};
  const std::string text = j.dump(1) + "\n";
  AtomicFile file(dir_ + "/latents.json");
  file.write(text.data(), text.size());
  file.commit();
}

}  // namespace lit::train
