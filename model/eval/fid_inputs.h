// What `lit fid` can evaluate, and how images become feature vectors:
//   - a folder of images (PNG; JPEG, WebP, ... when built with OpenCV), searched recursively, any sizes;
//   - an `.npz` image batch with `arr_0`, uint8 (N, H, W, 3), as `lit generate --npz` and the ADM evaluator
//     write them; an ADM reference batch also holds `mu`, `sigma`, which are then used as its statistics;
//   - an `.npz` of statistics (`mu`, `sigma`), as pytorch-fid and clean-fid write them.
// An image batch may carry its class labels as `arr_1` (int64 or int32, N), guided-diffusion's convention.
// Preprocessing is pytorch-fid's: every image RGB (gray expanded, alpha dropped: PIL's convert("RGB")), to
// float32 in [0, 1] by x / 255 (torchvision's ToTensor); the feature network does the rest (for Inception:
// the bilinear resize to 299 and the scaling to [-1, 1]).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "model/eval/feature_extractor.h"
#include "model/eval/frechet.h"

namespace lit {

enum class FidInputKind { ImageFolder, ImageBatch, Statistics };
const char* fid_input_kind_name(FidInputKind kind);  // "image folder", "image batch (.npz arr_0)", "statistics (.npz)"

struct FidInput {
  std::string path;
  FidInputKind kind = FidInputKind::ImageFolder;
  std::vector<std::string> files;          // ImageFolder: the images, sorted by path
  at::Tensor pixels;                       // ImageBatch: arr_0, uint8 (N, H, W, C) on the CPU
  std::optional<FeatureStatistics> stats;  // Statistics, or a batch that carries mu, sigma (ADM reference)
  at::Tensor labels;  // (N,) int64 class labels when the input carries them (an .npz's arr_1), else undefined

  bool has_images() const { return kind != FidInputKind::Statistics; }
  int64_t num_images() const;  // 0 for statistics
};

// Opens a folder or an .npz and says what it holds (an image batch's pixels are read; images in a folder are
// only listed). Throws lit::Error naming the path: missing, an empty folder, an .npz holding neither arr_0 nor
// mu/sigma, a malformed arr_0.
FidInput open_fid_input(const std::string& path);

// The class labels of a folder written by `lit generate`: the "Class: N" field of each PNG's parameters, (N,)
// int64 in the folder's order, or an undefined tensor when some image has none (or is not a PNG).
at::Tensor read_folder_labels(const std::vector<std::string>& files);

// Image files under `folder`, recursively, by extension (png, jpg, jpeg, bmp, webp, tif, tiff, pgm, ppm, the
// extensions pytorch-fid accepts, any case), sorted. Throws lit::Error when there are none.
std::vector<std::string> list_image_files(const std::string& folder);

// uint8 (H, W, C) -> float32 (3, H, W) in [0, 1]: RGB as PIL's convert("RGB") makes it, then ToTensor.
at::Tensor image_to_unit_rgb(const at::Tensor& pixels);

struct FeatureRunOptions {
  int64_t batch_size = 50;  // pytorch-fid's default
  // Called with (0, total) at the start, then after every batch with (images done, total); the CLI draws a
  // progress bar from it.
  std::function<void(int64_t done, int64_t total)> progress;
};

// Runs the feature network over every image of the input, in order, batch by batch (within a batch, runs of
// equal-sized images go through together). Returns features (N, D) and logits (when the network has them),
// float32 on the CPU. Throws lit::Error for statistics inputs and for an unreadable image (naming it).
FeatureBatch extract_features(const FidInput& input, FeatureExtractor& network, const FeatureRunOptions& options = {});

}  // namespace lit
