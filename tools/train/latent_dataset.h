// Pre-extracted VAE posteriors (`lit extract-latents`), the fast-DiT speed-up: the VAE encoder runs once per
// image instead of once per step, but training still draws a fresh latent from each image's posterior every
// time (z = mean + exp(logvar / 2) * noise, then into the model's space: (z - shift) * scaling factor), so the
// noise of the encoder is not frozen. Both the image and its horizontal flip are stored; each draw picks one.
//
// Folder layout: latents.json (count, latent shape, classes, scaling and shift factors, image size, shard
// files) and shard-NNNNN.safetensors, each with "mean" and "logvar" (n, 2, C, h, w) float16 (index 1 of the
// second dimension is the flipped image) and "labels" (n,) int64.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "tools/train/train_data.h"
#include "weights/safetensors.h"

namespace lit::train {

struct LatentFolderInfo {
  int64_t count = 0;
  std::vector<int64_t> shape;  // {C, h, w}
  std::vector<std::string> classes;
  double scaling_factor = 0.18215, shift_factor = 0.0;
  int64_t image_size = 256;
  std::string vae;  // where the VAE came from, for the record
  std::vector<std::string> shards;
};

bool is_latent_folder(const std::string& path);  // has latents.json

class LatentFolder : public TrainingData {
 public:
  explicit LatentFolder(std::string dir);  // throws lit::Error naming the file and the problem
  int64_t size() const override { return info_.count; }
  int64_t num_classes() const override { return static_cast<int64_t>(info_.classes.size()); }
  std::vector<int64_t> example_shape() const override { return info_.shape; }
  // The seed's lowest bit picks the flip; the rest seeds the posterior noise.
  Example get(int64_t index, uint64_t seed) const override;
  std::string description() const override;
  double scaling_factor() const { return info_.scaling_factor; }
  const LatentFolderInfo& info() const { return info_; }

 private:
  std::string dir_;
  LatentFolderInfo info_;
  std::vector<SafetensorsFile> shards_;
  std::vector<int64_t> shard_start_;  // first index of each shard
};

std::shared_ptr<LatentFolder> open_latent_folder(const std::string& dir);

// Writes a latents folder shard by shard. add() takes one image's posterior (mean, logvar (2, C, h, w):
// unflipped then flipped); finish() writes the last shard and latents.json (last, so a folder without it is
// an unfinished extraction).
class LatentFolderWriter {
 public:
  LatentFolderWriter(std::string dir, LatentFolderInfo info, int64_t shard_size = 4096);
  void add(const at::Tensor& mean, const at::Tensor& logvar, int64_t label);
  void finish();
  int64_t count() const { return count_; }

 private:
  void flush();

  std::string dir_;
  LatentFolderInfo info_;
  int64_t shard_size_, count_ = 0;
  std::vector<at::Tensor> means_, logvars_;
  std::vector<int64_t> labels_;
};

}  // namespace lit::train
