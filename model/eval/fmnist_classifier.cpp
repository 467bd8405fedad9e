#include "model/eval/fmnist_classifier.h"

#include <ATen/core/grad_mode.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/format.h"
#include "model/backbone/builtin_model.h"
#include "weights/safetensors.h"

namespace lit {

// ---------------------------------------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------------------------------------
namespace {

torch::nn::Conv2d conv3x3(int64_t in, int64_t out) {
  return torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1).bias(false));
}

}  // namespace

FmnistClassifierImpl::FmnistClassifierImpl() {
  conv1 = register_module("conv1", conv3x3(1, 32));
  bn1 = register_module("bn1", torch::nn::BatchNorm2d(32));
  conv2 = register_module("conv2", conv3x3(32, 32));
  bn2 = register_module("bn2", torch::nn::BatchNorm2d(32));
  conv3 = register_module("conv3", conv3x3(32, 64));
  bn3 = register_module("bn3", torch::nn::BatchNorm2d(64));
  conv4 = register_module("conv4", conv3x3(64, 64));
  bn4 = register_module("bn4", torch::nn::BatchNorm2d(64));
  fc1 = register_module("fc1", torch::nn::Linear(64 * 4 * 4, kFeatureDim));
  fc2 = register_module("fc2", torch::nn::Linear(kFeatureDim, kNumClasses));
}

at::Tensor FmnistClassifierImpl::features(const at::Tensor& x) {
  at::Tensor h = at::max_pool2d(at::relu(bn1->forward(conv1->forward(x))), {2, 2});  // 32 -> 16
  h = at::relu(bn2->forward(conv2->forward(h)));                                     // 16
  h = at::max_pool2d(at::relu(bn3->forward(conv3->forward(h))), {2, 2});             // 16 -> 8
  h = at::max_pool2d(at::relu(bn4->forward(conv4->forward(h))), {2, 2});             // 8 -> 4
  return at::relu(fc1->forward(h.flatten(1)));
}

at::Tensor FmnistClassifierImpl::classify(const at::Tensor& features) {
  return fc2->forward(at::dropout(features, 0.3, is_training()));
}

at::Tensor FmnistClassifierImpl::forward(const at::Tensor& x) {
  return classify(features(x));
}

std::vector<std::pair<std::string, at::Tensor>> FmnistClassifierImpl::named_state() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : named_parameters()) out.emplace_back(p.key(), p.value());
  for (const auto& b : named_buffers())
    if (b.key().find("num_batches_tracked") == std::string::npos) out.emplace_back(b.key(), b.value());
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------
void save_fmnist_classifier(const std::string& path, const FmnistClassifier& model,
                            const std::map<std::string, std::string>& metadata, at::ScalarType dtype) {
  if (dtype != at::kFloat && dtype != at::kHalf) throw Error(path + ": the classifier is saved in float32 or float16");
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const auto& [name, t] : model->named_state()) tensors.emplace_back(name, t.detach().to(at::kCPU, dtype));
  std::map<std::string, std::string> meta = metadata;
  meta[kFeatureNetworkKey] = kFmnistClassifierKind;
  meta["class_names"] = nlohmann::json(fashion_mnist_class_names()).dump();
  write_safetensors(path, tensors, meta);
}

LoadedFmnistClassifier load_fmnist_classifier(const std::string& path, at::Device device) {
  const SafetensorsFile file = SafetensorsFile::open(path);
  const auto kind = file.metadata().find(kFeatureNetworkKey);
  if (kind == file.metadata().end() || kind->second != kFmnistClassifierKind)
    throw Error(path + ": not a Fashion-MNIST classifier (no \"" + kFeatureNetworkKey + "\": \"" +
                kFmnistClassifierKind + "\" metadata; write one with `lit train-classifier`)");
  LoadedFmnistClassifier loaded;
  loaded.model = FmnistClassifier();
  at::NoGradGuard no_grad;
  for (auto& [name, target] : loaded.model->named_state()) {
    if (!file.contains(name)) throw Error(path + ": the classifier tensor '" + name + "' is missing");
    const at::Tensor t = file.tensor(name);
    if (t.sizes() != target.sizes())
      throw Error(path + ": tensor '" + name + "' has shape " + shape_string(t.sizes()) + ", expected " +
                  shape_string(target.sizes()));
    target.copy_(t.to(at::kFloat));
  }
  loaded.model->to(device);
  loaded.model->eval();
  loaded.metadata = file.metadata();
  return loaded;
}

// ---------------------------------------------------------------------------------------------------------
// Preprocessing and the feature extractor
// ---------------------------------------------------------------------------------------------------------
at::Tensor fmnist_classifier_input(const at::Tensor& unit_images) {
  if (unit_images.dim() != 4 || (unit_images.size(1) != 1 && unit_images.size(1) != 3))
    throw Error("Fashion-MNIST classifier: expects images (N, 1 or 3, H, W), got " + shape_string(unit_images.sizes()));
  const int64_t h = unit_images.size(2), w = unit_images.size(3);
  if (!((h == 28 && w == 28) || (h == 32 && w == 32)))
    throw Error("Fashion-MNIST classifier: expects 28x28 or 32x32 images, got " + std::to_string(h) + "x" +
                std::to_string(w));
  at::Tensor x = unit_images.to(at::kFloat);
  if (x.size(1) == 3) {
    // Per image: a gray image stored as RGB is its first channel; a colour one becomes its luminance.
    const at::Tensor r = x.select(1, 0), g = x.select(1, 1), b = x.select(1, 2);
    const at::Tensor equal = (r.eq(g) & r.eq(b)).flatten(1).all(1).view({-1, 1, 1});
    x = at::where(equal, r, 0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1);
  }
  x = x * 2 - 1;
  if (h == 28) x = at::constant_pad_nd(x, {2, 2, 2, 2}, -1.0);
  return x.contiguous();
}

FeatureBatch FmnistFeatureExtractor::extract(const at::Tensor& images) {
  at::NoGradGuard no_grad;
  const at::Tensor x = fmnist_classifier_input(images).to(model_->parameters()[0].device());
  FeatureBatch out;
  out.features = model_->features(x);
  out.logits = model_->classify(out.features);
  return out;
}

}  // namespace lit
