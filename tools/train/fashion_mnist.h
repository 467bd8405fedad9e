// Fashion-MNIST (Xiao et al.) from its IDX files, gzip-compressed as distributed (Debian's
// dataset-fashion-mnist puts them in /usr/share/datasets/fashion-mnist/): 28x28 gray images of 10 classes,
// padded with black to 32x32 so a patch size of 2, 4 or 8 tiles them, one channel, scaled to [-1, 1].
// The built-in pixel-space model trains on it.
#pragma once

#include <memory>
#include <string>

#include "tools/train/train_data.h"

namespace lit::train {

// The folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
std::string default_fashion_mnist_dir();

// split: "train" (60,000 images) or "t10k" (10,000). Throws lit::Error naming the file and the problem.
std::shared_ptr<TrainingData> load_fashion_mnist(const std::string& dir, const std::string& split = "train");

}  // namespace lit::train
