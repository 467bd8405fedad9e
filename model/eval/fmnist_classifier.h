// FmnistClassifier: a small CNN trained on Fashion-MNIST by `lit train-classifier`, shipped as
// model/builtin/fmnist-classifier.safetensors. Inception weights cannot be assumed on a machine without network,
// so the built-in Fashion-MNIST model is evaluated in this network's feature space instead: the Fréchet
// distance there is "FD-FMNIST" (never called FID), and its logits give the class accuracy of samples.
//
//   x (N, 1, 32, 32) in [-1, 1]  (28x28 images padded with -1, as tools/fashion_mnist.cpp does for training)
//   -> conv 1->32 3x3 + BN + ReLU -> max pool 2                 (32 -> 16)
//   -> conv 32->32 3x3 + BN + ReLU -> conv 32->64 3x3 + BN + ReLU -> max pool 2   (16 -> 8)
//   -> conv 64->64 3x3 + BN + ReLU -> max pool 2                (8 -> 4)
//   -> flatten (1024) -> linear 1024->256 + ReLU = the FEATURES (256-d)
//   -> dropout 0.3 -> linear 256->10 = the logits
//
// Saved as safetensors (PyTorch-style names: conv1.weight, bn1.running_mean, fc1.bias, ...) with the metadata
// {"lit_feature_network": "fmnist-classifier", "class_names": [...], "test_accuracy": "0.9xxx"}.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "model/eval/feature_extractor.h"

namespace lit {

inline constexpr const char* kFeatureNetworkKey = "lit_feature_network";
inline constexpr const char* kFmnistClassifierKind = "fmnist-classifier";
// The convention printed beside every number computed in this feature space.
inline constexpr const char* kFdFmnistConvention =
    "Fashion-MNIST classifier features 256-d, 28x28 padded to 32x32 with -1, float64 stats";

class FmnistClassifierImpl : public torch::nn::Module {
 public:
  static constexpr int64_t kFeatureDim = 256;
  static constexpr int64_t kNumClasses = 10;
  static constexpr int64_t kImageSize = 32;

  FmnistClassifierImpl();

  // x (N, 1, 32, 32) in [-1, 1] -> logits (N, 10). Dropout and batch statistics follow is_training().
  at::Tensor forward(const at::Tensor& x);
  // The 256-d penultimate activations (after the ReLU).
  at::Tensor features(const at::Tensor& x);
  // features -> logits (dropout when training).
  at::Tensor classify(const at::Tensor& features);

  // Parameters and batch-norm running statistics by name, in a fixed order (num_batches_tracked left out).
  std::vector<std::pair<std::string, at::Tensor>> named_state() const;

 private:
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr}, conv4{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr}, bn4{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(FmnistClassifier);

// Writes the classifier (tensors in `dtype`: float32, or float16 to halve the file) with the metadata above
// plus `metadata` (e.g. "test_accuracy"), atomically. Throws lit::Error.
void save_fmnist_classifier(const std::string& path, const FmnistClassifier& model,
                            const std::map<std::string, std::string>& metadata = {}, at::ScalarType dtype = at::kFloat);

struct LoadedFmnistClassifier {
  FmnistClassifier model{nullptr};              // eval mode, float32, on the requested device
  std::map<std::string, std::string> metadata;  // as stored (test_accuracy, class_names, ...)
};

// Reads a file written by save_fmnist_classifier. Throws a one-line lit::Error naming the file when it is not
// such a classifier (no lit_feature_network metadata, another network, a missing or misshapen tensor).
LoadedFmnistClassifier load_fmnist_classifier(const std::string& path, at::Device device = at::kCPU);

// Images as the feature extractors receive them, (N, 3 or 1, H, W) float in [0, 1], -> the classifier's input
// (N, 1, 32, 32) in [-1, 1]: gray as channel 0 when the channels are equal (per image), else the luminance
// 0.299 R + 0.587 G + 0.114 B; 28x28 padded with 2 pixels of -1 on each side; 32x32 used as is. Throws
// lit::Error for other sizes.
at::Tensor fmnist_classifier_input(const at::Tensor& unit_images);

// The classifier as a FeatureExtractor: 256-d features and the 10 logits.
class FmnistFeatureExtractor : public FeatureExtractor {
 public:
  FmnistFeatureExtractor(FmnistClassifier model, std::string source)
      : model_(std::move(model)), source_(std::move(source)) {}

  std::string name() const override { return "Fashion-MNIST classifier (" + source_ + ")"; }
  std::string convention() const override { return kFdFmnistConvention; }
  int64_t feature_dim() const override { return FmnistClassifierImpl::kFeatureDim; }
  bool has_logits() const override { return true; }
  FeatureBatch extract(const at::Tensor& images) override;

 private:
  FmnistClassifier model_;
  std::string source_;
};

}  // namespace lit
