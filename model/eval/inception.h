// InceptionV3 as pytorch-fid uses it for FID: torchvision's Inception3 layout with the "FID blocks" that
// reproduce the 2015 TensorFlow graph (classify_image_graph_def.pb) the FID was defined with, and its
// converted weights `pt_inception-2015-12-05-6726825d.pth` (a torch.save state dict the user supplies).
//
// The TF graph's quirks, kept because every published FID depends on them:
//   - every convolution is conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU ("BasicConv2d");
//   - the average pools in the A, C and first E blocks leave the zero padding out of the mean
//     (count_include_pad = false);
//   - the last E block (Mixed_7c) pools its pool branch with a max pool (3x3, stride 1, padding 1);
//   - the classifier has 1008 outputs (the TF model's 1001 classes padded), not 1000.
//
//   images in [0, 1] -> bilinear resize to 299x299 (align_corners false, no antialias) -> 2x - 1
//   -> stem (Conv2d_1a .. Conv2d_4a, two max pools) -> Mixed_5b..5d (A) -> Mixed_6a (B) -> Mixed_6b..6e (C)
//   -> Mixed_7a (D) -> Mixed_7b (E, avg pool) -> Mixed_7c (E, max pool) -> global average pool = pool3 (2048)
//   -> fc (1008 logits)
//
// Inference only, plain structs over ATen ops (as model/vae_blocks.h): each block `visit`s its tensors by
// state-dict name, which is how they are checked and loaded.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/eval/feature_extractor.h"
#include "weights/state_dict.h"

namespace lit {
namespace inception {

using ParamVisitor = std::function<void(const std::string& name, at::Tensor& tensor)>;

// conv (no bias) -> BatchNorm (inference, eps 1e-3) -> ReLU. Kernels may be rectangular (1x7, 7x1, ...).
struct BasicConv2d {
  BasicConv2d() = default;
  BasicConv2d(int64_t in, int64_t out, std::vector<int64_t> kernel, std::vector<int64_t> stride = {1, 1},
              std::vector<int64_t> padding = {0, 0});
  at::Tensor forward(const at::Tensor& x) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  at::Tensor weight;                                         // conv.weight (out, in, kh, kw)
  at::Tensor bn_weight, bn_bias, running_mean, running_var;  // bn.*
  std::vector<int64_t> stride{1, 1}, padding{0, 0};
};

// 1x1 | 1x1 -> 5x5 | 1x1 -> 3x3 -> 3x3 | avg pool (padding excluded) -> 1x1.   (pytorch-fid's FIDInceptionA)
struct InceptionA {
  InceptionA() = default;
  InceptionA(int64_t in, int64_t pool_features);
  at::Tensor forward(const at::Tensor& x) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  BasicConv2d branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branch_pool;
};

// Grid reduction 35 -> 17: 3x3 stride 2 | 1x1 -> 3x3 -> 3x3 stride 2 | max pool stride 2.   (torchvision's)
struct InceptionB {
  InceptionB() = default;
  explicit InceptionB(int64_t in);
  at::Tensor forward(const at::Tensor& x) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  BasicConv2d branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;
};

// Factorised 7x7: 1x1 | 1x1 -> 1x7 -> 7x1 | 1x1 -> 7x1 -> 1x7 -> 7x1 -> 1x7 | avg pool (padding excluded)
// -> 1x1.   (FIDInceptionC)
struct InceptionC {
  InceptionC() = default;
  InceptionC(int64_t in, int64_t channels_7x7);
  at::Tensor forward(const at::Tensor& x) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  BasicConv2d branch1x1, branch7x7_1, branch7x7_2, branch7x7_3;
  BasicConv2d branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool;
};

// Grid reduction 17 -> 8: 1x1 -> 3x3 stride 2 | 1x1 -> 1x7 -> 7x1 -> 3x3 stride 2 | max pool stride 2.
struct InceptionD {
  InceptionD() = default;
  explicit InceptionD(int64_t in);
  at::Tensor forward(const at::Tensor& x) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  BasicConv2d branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4;
};

// Expanded filter bank: 1x1 | 1x1 -> [1x3, 3x1] | 1x1 -> 3x3 -> [1x3, 3x1] | pool -> 1x1. The pool is an
// average pool without the padding (FIDInceptionE_1, Mixed_7b) or a max pool (FIDInceptionE_2, Mixed_7c).
struct InceptionE {
  InceptionE() = default;
  InceptionE(int64_t in, bool max_pool);
  at::Tensor forward(const at::Tensor& x) const;
  void visit(const std::string& prefix, const ParamVisitor& fn);

  BasicConv2d branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b;
  BasicConv2d branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b, branch_pool;
  bool max_pool = false;
};

}  // namespace inception

// The standard file and where it comes from, for messages (no network access is assumed).
inline constexpr const char* kInceptionFileName = "pt_inception-2015-12-05-6726825d.pth";
inline constexpr const char* kInceptionUrl =
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth";

// The convention printed beside every number computed with it.
inline constexpr const char* kInceptionFidConvention =
    "pytorch-fid convention: pool3 2048-d, bilinear 299 resize, float64 stats";

class InceptionV3 {
 public:
  static constexpr int64_t kFeatureDim = 2048;  // pool3
  static constexpr int64_t kNumLogits = 1008;
  static constexpr int64_t kInputSize = 299;

  // The network from a state dict with pytorch-fid's names (num_batches_tracked ignored), on `device`, in
  // float32. Throws lit::Error naming `source` and the tensor when one is missing, unexpected or misshapen.
  InceptionV3(const StateDict& weights, at::Device device = at::kCPU, const std::string& source = "state dict");

  // Reads a torch.save file (zip or legacy) or a safetensors file. Throws lit::Error; a missing file gets a
  // message that says where the standard file comes from.
  static InceptionV3 load(const std::string& path, at::Device device = at::kCPU);

  // Every tensor name with its shape, in state-dict order (num_batches_tracked excluded).
  static std::vector<std::pair<std::string, std::vector<int64_t>>> state_dict_shapes();

  // images (N, 3, H, W) in [0, 1] -> pool3 features (N, 2048), float32 on the network's device. Resized to
  // 299x299 and scaled to [-1, 1] as pytorch-fid does (always resized, as pytorch-fid does).
  at::Tensor features(const at::Tensor& images) const;
  // pool3 features -> the 1008-way logits: x W^T + b (with_bias, the PyTorch module's fc) or x W^T (the
  // "softmax/logits/MatMul" output that the Inception Score code of improved-gan and ADM takes).
  at::Tensor logits(const at::Tensor& features, bool with_bias = true) const;

  at::Device device() const { return fc_weight_.device(); }

 private:
  InceptionV3();
  void visit(const inception::ParamVisitor& fn);

  inception::BasicConv2d Conv2d_1a_3x3, Conv2d_2a_3x3, Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3;
  inception::InceptionA Mixed_5b, Mixed_5c, Mixed_5d;
  inception::InceptionB Mixed_6a;
  inception::InceptionC Mixed_6b, Mixed_6c, Mixed_6d, Mixed_6e;
  inception::InceptionD Mixed_7a;
  inception::InceptionE Mixed_7b, Mixed_7c;
  at::Tensor fc_weight_, fc_bias_;
};

// The Inception weights file to use: `given` if not empty, else $LIT_INCEPTION. Throws lit::Error when
// neither names one, or the file does not exist, saying where the standard file comes from.
std::string resolve_inception_path(const std::string& given);

// InceptionV3 as a FeatureExtractor: pool3 features and, for the Inception Score, the 1008 logits without
// the fc bias (x W^T), as improved-gan's and ADM's evaluators take them from the TF graph.
class InceptionFeatureExtractor : public FeatureExtractor {
 public:
  explicit InceptionFeatureExtractor(std::shared_ptr<InceptionV3> network) : network_(std::move(network)) {}

  std::string name() const override { return "InceptionV3 (pytorch-fid layout)"; }
  std::string convention() const override { return kInceptionFidConvention; }
  int64_t feature_dim() const override { return InceptionV3::kFeatureDim; }
  bool has_logits() const override { return true; }
  FeatureBatch extract(const at::Tensor& images) override;

  const InceptionV3& network() const { return *network_; }

 private:
  std::shared_ptr<InceptionV3> network_;
};

}  // namespace lit
