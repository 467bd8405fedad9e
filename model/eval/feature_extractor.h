// FeatureExtractor: a network that maps images to feature vectors, the one thing FID-style metrics need from
// a model. InceptionV3 in pytorch-fid's layout (model/inception.h) is the standard one; any model the
// project can load that maps images to vectors (e.g. a domain classifier for a small data set) can stand in,
// and the statistics, Fréchet distance, Inception Score and precision/recall (model/frechet.h) work the same.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace lit {

struct FeatureBatch {
  at::Tensor features;  // (N, D) float32 on the CPU
  at::Tensor logits;    // (N, classes) float32 on the CPU, or undefined when the network has no classifier
};

class FeatureExtractor {
 public:
  virtual ~FeatureExtractor() = default;

  // For messages and reports: what the network is ("InceptionV3 (pytorch-fid, pt_inception-2015-12-05)").
  virtual std::string name() const = 0;
  // Which convention its numbers follow, printed beside every result ("pytorch-fid convention: ...").
  virtual std::string convention() const = 0;
  virtual int64_t feature_dim() const = 0;
  virtual bool has_logits() const { return false; }

  // images: (N, 3, H, W) float32 RGB in [0, 1], on any device, all of one size (any size: the network
  // resizes as its convention says). Returns the features, and the logits when has_logits().
  virtual FeatureBatch extract(const at::Tensor& images) = 0;
};

}  // namespace lit
