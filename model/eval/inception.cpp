#include "model/eval/inception.h"

#include <ATen/core/grad_mode.h>

#include <cstdlib>
#include <filesystem>
#include <set>

#include "common/error.h"
#include "common/format.h"
#include "weights/checkpoint.h"

namespace lit {
namespace inception {
namespace {

at::Tensor meta(std::vector<int64_t> shape) {
  return at::empty(shape, at::TensorOptions().device(at::kMeta));
}

// The average pool of the FID blocks: 3x3, stride 1, padding 1, the padding left out of the mean (the TF
// graph's behaviour; torchvision's own blocks count it).
at::Tensor fid_avg_pool(const at::Tensor& x) {
  return at::avg_pool2d(x, {3, 3}, {1, 1}, {1, 1}, /*ceil_mode=*/false, /*count_include_pad=*/false);
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// BasicConv2d
// ---------------------------------------------------------------------------------------------------------
BasicConv2d::BasicConv2d(int64_t in, int64_t out, std::vector<int64_t> kernel, std::vector<int64_t> stride_,
                         std::vector<int64_t> padding_)
    : weight(meta({out, in, kernel[0], kernel[1]})),
      bn_weight(meta({out})),
      bn_bias(meta({out})),
      running_mean(meta({out})),
      running_var(meta({out})),
      stride(std::move(stride_)),
      padding(std::move(padding_)) {}

at::Tensor BasicConv2d::forward(const at::Tensor& x) const {
  const at::Tensor y = at::conv2d(x, weight, {}, stride, padding);
  at::Tensor z = at::batch_norm(y, bn_weight, bn_bias, running_mean, running_var, /*training=*/false,
                                /*momentum=*/0.0, /*eps=*/1e-3, /*cudnn_enabled=*/true);
  return z.relu_();
}

void BasicConv2d::visit(const std::string& p, const ParamVisitor& fn) {
  fn(p + ".conv.weight", weight);
  fn(p + ".bn.weight", bn_weight);
  fn(p + ".bn.bias", bn_bias);
  fn(p + ".bn.running_mean", running_mean);
  fn(p + ".bn.running_var", running_var);
}

// ---------------------------------------------------------------------------------------------------------
// InceptionA (FIDInceptionA)
// ---------------------------------------------------------------------------------------------------------
InceptionA::InceptionA(int64_t in, int64_t pool_features)
    : branch1x1(in, 64, {1, 1}),
      branch5x5_1(in, 48, {1, 1}),
      branch5x5_2(48, 64, {5, 5}, {1, 1}, {2, 2}),
      branch3x3dbl_1(in, 64, {1, 1}),
      branch3x3dbl_2(64, 96, {3, 3}, {1, 1}, {1, 1}),
      branch3x3dbl_3(96, 96, {3, 3}, {1, 1}, {1, 1}),
      branch_pool(in, pool_features, {1, 1}) {}

at::Tensor InceptionA::forward(const at::Tensor& x) const {
  return at::cat(
      {branch1x1.forward(x), branch5x5_2.forward(branch5x5_1.forward(x)),
       branch3x3dbl_3.forward(branch3x3dbl_2.forward(branch3x3dbl_1.forward(x))), branch_pool.forward(fid_avg_pool(x))},
      1);
}

void InceptionA::visit(const std::string& p, const ParamVisitor& fn) {
  branch1x1.visit(p + ".branch1x1", fn);
  branch5x5_1.visit(p + ".branch5x5_1", fn);
  branch5x5_2.visit(p + ".branch5x5_2", fn);
  branch3x3dbl_1.visit(p + ".branch3x3dbl_1", fn);
  branch3x3dbl_2.visit(p + ".branch3x3dbl_2", fn);
  branch3x3dbl_3.visit(p + ".branch3x3dbl_3", fn);
  branch_pool.visit(p + ".branch_pool", fn);
}

// ---------------------------------------------------------------------------------------------------------
// InceptionB
// ---------------------------------------------------------------------------------------------------------
InceptionB::InceptionB(int64_t in)
    : branch3x3(in, 384, {3, 3}, {2, 2}),
      branch3x3dbl_1(in, 64, {1, 1}),
      branch3x3dbl_2(64, 96, {3, 3}, {1, 1}, {1, 1}),
      branch3x3dbl_3(96, 96, {3, 3}, {2, 2}) {}

at::Tensor InceptionB::forward(const at::Tensor& x) const {
  return at::cat({branch3x3.forward(x), branch3x3dbl_3.forward(branch3x3dbl_2.forward(branch3x3dbl_1.forward(x))),
                  at::max_pool2d(x, {3, 3}, {2, 2})},
                 1);
}

void InceptionB::visit(const std::string& p, const ParamVisitor& fn) {
  branch3x3.visit(p + ".branch3x3", fn);
  branch3x3dbl_1.visit(p + ".branch3x3dbl_1", fn);
  branch3x3dbl_2.visit(p + ".branch3x3dbl_2", fn);
  branch3x3dbl_3.visit(p + ".branch3x3dbl_3", fn);
}

// ---------------------------------------------------------------------------------------------------------
// InceptionC (FIDInceptionC)
// ---------------------------------------------------------------------------------------------------------
InceptionC::InceptionC(int64_t in, int64_t c7)
    : branch1x1(in, 192, {1, 1}),
      branch7x7_1(in, c7, {1, 1}),
      branch7x7_2(c7, c7, {1, 7}, {1, 1}, {0, 3}),
      branch7x7_3(c7, 192, {7, 1}, {1, 1}, {3, 0}),
      branch7x7dbl_1(in, c7, {1, 1}),
      branch7x7dbl_2(c7, c7, {7, 1}, {1, 1}, {3, 0}),
      branch7x7dbl_3(c7, c7, {1, 7}, {1, 1}, {0, 3}),
      branch7x7dbl_4(c7, c7, {7, 1}, {1, 1}, {3, 0}),
      branch7x7dbl_5(c7, 192, {1, 7}, {1, 1}, {0, 3}),
      branch_pool(in, 192, {1, 1}) {}

at::Tensor InceptionC::forward(const at::Tensor& x) const {
  const at::Tensor b7 = branch7x7_3.forward(branch7x7_2.forward(branch7x7_1.forward(x)));
  at::Tensor d = branch7x7dbl_1.forward(x);
  d = branch7x7dbl_5.forward(branch7x7dbl_4.forward(branch7x7dbl_3.forward(branch7x7dbl_2.forward(d))));
  return at::cat({branch1x1.forward(x), b7, d, branch_pool.forward(fid_avg_pool(x))}, 1);
}

void InceptionC::visit(const std::string& p, const ParamVisitor& fn) {
  branch1x1.visit(p + ".branch1x1", fn);
  branch7x7_1.visit(p + ".branch7x7_1", fn);
  branch7x7_2.visit(p + ".branch7x7_2", fn);
  branch7x7_3.visit(p + ".branch7x7_3", fn);
  branch7x7dbl_1.visit(p + ".branch7x7dbl_1", fn);
  branch7x7dbl_2.visit(p + ".branch7x7dbl_2", fn);
  branch7x7dbl_3.visit(p + ".branch7x7dbl_3", fn);
  branch7x7dbl_4.visit(p + ".branch7x7dbl_4", fn);
  branch7x7dbl_5.visit(p + ".branch7x7dbl_5", fn);
  branch_pool.visit(p + ".branch_pool", fn);
}

// ---------------------------------------------------------------------------------------------------------
// InceptionD
// ---------------------------------------------------------------------------------------------------------
InceptionD::InceptionD(int64_t in)
    : branch3x3_1(in, 192, {1, 1}),
      branch3x3_2(192, 320, {3, 3}, {2, 2}),
      branch7x7x3_1(in, 192, {1, 1}),
      branch7x7x3_2(192, 192, {1, 7}, {1, 1}, {0, 3}),
      branch7x7x3_3(192, 192, {7, 1}, {1, 1}, {3, 0}),
      branch7x7x3_4(192, 192, {3, 3}, {2, 2}) {}

at::Tensor InceptionD::forward(const at::Tensor& x) const {
  const at::Tensor b3 = branch3x3_2.forward(branch3x3_1.forward(x));
  const at::Tensor b7 = branch7x7x3_4.forward(branch7x7x3_3.forward(branch7x7x3_2.forward(branch7x7x3_1.forward(x))));
  return at::cat({b3, b7, at::max_pool2d(x, {3, 3}, {2, 2})}, 1);
}

void InceptionD::visit(const std::string& p, const ParamVisitor& fn) {
  branch3x3_1.visit(p + ".branch3x3_1", fn);
  branch3x3_2.visit(p + ".branch3x3_2", fn);
  branch7x7x3_1.visit(p + ".branch7x7x3_1", fn);
  branch7x7x3_2.visit(p + ".branch7x7x3_2", fn);
  branch7x7x3_3.visit(p + ".branch7x7x3_3", fn);
  branch7x7x3_4.visit(p + ".branch7x7x3_4", fn);
}

// ---------------------------------------------------------------------------------------------------------
// InceptionE (FIDInceptionE_1 with the average pool, FIDInceptionE_2 with the max pool)
// ---------------------------------------------------------------------------------------------------------
InceptionE::InceptionE(int64_t in, bool max_pool_)
    : branch1x1(in, 320, {1, 1}),
      branch3x3_1(in, 384, {1, 1}),
      branch3x3_2a(384, 384, {1, 3}, {1, 1}, {0, 1}),
      branch3x3_2b(384, 384, {3, 1}, {1, 1}, {1, 0}),
      branch3x3dbl_1(in, 448, {1, 1}),
      branch3x3dbl_2(448, 384, {3, 3}, {1, 1}, {1, 1}),
      branch3x3dbl_3a(384, 384, {1, 3}, {1, 1}, {0, 1}),
      branch3x3dbl_3b(384, 384, {3, 1}, {1, 1}, {1, 0}),
      branch_pool(in, 192, {1, 1}),
      max_pool(max_pool_) {}

at::Tensor InceptionE::forward(const at::Tensor& x) const {
  const at::Tensor b3 = branch3x3_1.forward(x);
  const at::Tensor d = branch3x3dbl_2.forward(branch3x3dbl_1.forward(x));
  // The TF graph's last block max-pools here (pytorch-fid's FIDInceptionE_2); the others average.
  const at::Tensor pooled = max_pool ? at::max_pool2d(x, {3, 3}, {1, 1}, {1, 1}) : fid_avg_pool(x);
  return at::cat({branch1x1.forward(x), branch3x3_2a.forward(b3), branch3x3_2b.forward(b3), branch3x3dbl_3a.forward(d),
                  branch3x3dbl_3b.forward(d), branch_pool.forward(pooled)},
                 1);
}

void InceptionE::visit(const std::string& p, const ParamVisitor& fn) {
  branch1x1.visit(p + ".branch1x1", fn);
  branch3x3_1.visit(p + ".branch3x3_1", fn);
  branch3x3_2a.visit(p + ".branch3x3_2a", fn);
  branch3x3_2b.visit(p + ".branch3x3_2b", fn);
  branch3x3dbl_1.visit(p + ".branch3x3dbl_1", fn);
  branch3x3dbl_2.visit(p + ".branch3x3dbl_2", fn);
  branch3x3dbl_3a.visit(p + ".branch3x3dbl_3a", fn);
  branch3x3dbl_3b.visit(p + ".branch3x3dbl_3b", fn);
  branch_pool.visit(p + ".branch_pool", fn);
}

}  // namespace inception

// ---------------------------------------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------------------------------------
InceptionV3::InceptionV3()
    : Conv2d_1a_3x3(3, 32, {3, 3}, {2, 2}),
      Conv2d_2a_3x3(32, 32, {3, 3}),
      Conv2d_2b_3x3(32, 64, {3, 3}, {1, 1}, {1, 1}),
      Conv2d_3b_1x1(64, 80, {1, 1}),
      Conv2d_4a_3x3(80, 192, {3, 3}),
      Mixed_5b(192, 32),
      Mixed_5c(256, 64),
      Mixed_5d(288, 64),
      Mixed_6a(288),
      Mixed_6b(768, 128),
      Mixed_6c(768, 160),
      Mixed_6d(768, 160),
      Mixed_6e(768, 192),
      Mixed_7a(768),
      Mixed_7b(1280, /*max_pool=*/false),
      Mixed_7c(2048, /*max_pool=*/true),
      fc_weight_(inception::meta({kNumLogits, kFeatureDim})),
      fc_bias_(inception::meta({kNumLogits})) {}

void InceptionV3::visit(const inception::ParamVisitor& fn) {
  Conv2d_1a_3x3.visit("Conv2d_1a_3x3", fn);
  Conv2d_2a_3x3.visit("Conv2d_2a_3x3", fn);
  Conv2d_2b_3x3.visit("Conv2d_2b_3x3", fn);
  Conv2d_3b_1x1.visit("Conv2d_3b_1x1", fn);
  Conv2d_4a_3x3.visit("Conv2d_4a_3x3", fn);
  Mixed_5b.visit("Mixed_5b", fn);
  Mixed_5c.visit("Mixed_5c", fn);
  Mixed_5d.visit("Mixed_5d", fn);
  Mixed_6a.visit("Mixed_6a", fn);
  Mixed_6b.visit("Mixed_6b", fn);
  Mixed_6c.visit("Mixed_6c", fn);
  Mixed_6d.visit("Mixed_6d", fn);
  Mixed_6e.visit("Mixed_6e", fn);
  Mixed_7a.visit("Mixed_7a", fn);
  Mixed_7b.visit("Mixed_7b", fn);
  Mixed_7c.visit("Mixed_7c", fn);
  fn("fc.weight", fc_weight_);
  fn("fc.bias", fc_bias_);
}

InceptionV3::InceptionV3(const StateDict& weights, at::Device device, const std::string& source) : InceptionV3() {
  std::set<std::string> used;
  visit([&](const std::string& name, at::Tensor& tensor) {
    if (!weights.contains(name))
      throw Error(source + ": not an InceptionV3 FID state dict (pytorch-fid layout): missing tensor '" + name + "'");
    const at::Tensor& w = weights.at(name);
    if (w.sizes() != tensor.sizes())
      throw Error(source + ": tensor '" + name + "' has shape " + shape_string(w.sizes()) + ", expected " +
                  shape_string(tensor.sizes()));
    tensor = w.to(device, at::kFloat).contiguous();
    used.insert(name);
  });
  for (const auto& [name, tensor] : weights) {
    const std::string suffix = ".num_batches_tracked";
    const bool counter =
        name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (!counter && !used.count(name))
      throw Error(source + ": not an InceptionV3 FID state dict (pytorch-fid layout): unexpected tensor '" + name +
                  "'");
  }
}

InceptionV3 InceptionV3::load(const std::string& path, at::Device device) {
  const std::string resolved = resolve_inception_path(path);
  return InceptionV3(load_checkpoint(resolved, "state_dict").tensors, device, resolved);
}

std::vector<std::pair<std::string, std::vector<int64_t>>> InceptionV3::state_dict_shapes() {
  InceptionV3 net;
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  net.visit([&](const std::string& name, at::Tensor& t) { shapes.emplace_back(name, t.sizes().vec()); });
  return shapes;
}

at::Tensor InceptionV3::features(const at::Tensor& images) const {
  if (images.dim() != 4 || images.size(1) != 3)
    throw Error("InceptionV3: expected images (N, 3, H, W), got " + shape_string(images.sizes()));
  at::NoGradGuard no_grad;
  at::Tensor x = images.to(device(), at::kFloat);
  // pytorch-fid: F.interpolate(size=(299, 299), mode="bilinear", align_corners=False), then 2x - 1.
  x = at::upsample_bilinear2d(x, {kInputSize, kInputSize}, /*align_corners=*/false);
  x = 2 * x - 1;
  x = Conv2d_2b_3x3.forward(Conv2d_2a_3x3.forward(Conv2d_1a_3x3.forward(x)));
  x = at::max_pool2d(x, {3, 3}, {2, 2});
  x = Conv2d_4a_3x3.forward(Conv2d_3b_1x1.forward(x));
  x = at::max_pool2d(x, {3, 3}, {2, 2});
  x = Mixed_5d.forward(Mixed_5c.forward(Mixed_5b.forward(x)));
  x = Mixed_6a.forward(x);
  x = Mixed_6e.forward(Mixed_6d.forward(Mixed_6c.forward(Mixed_6b.forward(x))));
  x = Mixed_7c.forward(Mixed_7b.forward(Mixed_7a.forward(x)));
  return at::adaptive_avg_pool2d(x, {1, 1}).flatten(1);
}

at::Tensor InceptionV3::logits(const at::Tensor& features, bool with_bias) const {
  at::NoGradGuard no_grad;
  const at::Tensor x = features.to(device(), at::kFloat);
  return with_bias ? at::linear(x, fc_weight_, fc_bias_) : at::matmul(x, fc_weight_.t());
}

std::string resolve_inception_path(const std::string& given) {
  std::string path = given;
  if (path.empty()) {
    const char* env = std::getenv("LIT_INCEPTION");
    if (env) path = env;
  }
  const std::string where = std::string("the standard file is ") + kInceptionFileName + " from " + kInceptionUrl;
  if (path.empty())
    throw Error("no Inception weights given: pass --inception FILE or set LIT_INCEPTION (" + where + ")");
  if (!std::filesystem::exists(path)) throw Error("Inception weights '" + path + "' not found (" + where + ")");
  return path;
}

FeatureBatch InceptionFeatureExtractor::extract(const at::Tensor& images) {
  FeatureBatch out;
  const at::Tensor f = network_->features(images);
  out.features = f.to(at::kCPU);
  out.logits = network_->logits(f, /*with_bias=*/false).to(at::kCPU);
  return out;
}

}  // namespace lit
