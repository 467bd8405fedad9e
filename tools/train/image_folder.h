// An image folder in ImageNet's train layout: one sub-folder per class (sorted names give labels 0, 1, ...),
// images anywhere below it (PNG, and JPEG/WebP/BMP when the build has OpenCV imgcodecs). Each image is
// decoded, centre-cropped to a square of image_size as ADM's center_crop_arr does (which DiT's train.py
// uses), and flipped horizontally at random; the decoding runs on the loader's threads.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <string>
#include <vector>

#include "tools/train/train_data.h"

namespace lit::train {

// ADM's center_crop_arr on a uint8 (H, W, 3) image: halve with a box filter while the short side is at least
// twice image_size, resize bicubically so the short side is image_size, crop the centre. PIL's BOX and
// BICUBIC (antialiased, a = -0.5) are approximated by OpenCV's INTER_AREA and INTER_CUBIC (a = -0.75, no
// antialias: the bicubic step only shrinks by less than 2x after the halvings), so pixels can differ by a
// few levels from PIL's. Throws lit::Error when the build has no OpenCV imgproc.
at::Tensor center_crop_arr(const at::Tensor& image, int64_t image_size);

class ImageFolder : public TrainingData {
 public:
  // Lists the classes and files (sorted, so labels and indices are the same on every machine). Throws
  // lit::Error for a missing folder, no class folders, or a class folder without images.
  ImageFolder(std::string root, int64_t image_size, bool random_flip = true);

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  int64_t num_classes() const override { return static_cast<int64_t>(classes_.size()); }
  std::vector<int64_t> example_shape() const override { return {3, image_size_, image_size_}; }
  // Flipped when the seed's lowest bit is set (and random_flip).
  Example get(int64_t index, uint64_t seed) const override;
  std::string description() const override;

  // The cropped uint8 (S, S, 3) image, unflipped.
  at::Tensor cropped(int64_t index) const;
  const std::string& path(int64_t index) const { return files_[static_cast<size_t>(index)]; }
  int64_t label(int64_t index) const { return labels_[static_cast<size_t>(index)]; }
  const std::vector<std::string>& classes() const { return classes_; }

 private:
  std::string root_;
  int64_t image_size_;
  bool random_flip_;
  std::vector<std::string> classes_, files_;
  std::vector<int64_t> labels_;
};

std::shared_ptr<ImageFolder> open_image_folder(const std::string& root, int64_t image_size, bool random_flip = true);

}  // namespace lit::train
