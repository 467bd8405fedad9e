#include "tools/train/fashion_mnist.h"

#include <zlib.h>

#include <vector>

#include "common/error.h"
#include "common/input_file.h"
#include "model/backbone/builtin_model.h"

namespace lit::train {
namespace {

// The whole decompressed file, refused as soon as it inflates past max_bytes (a gzip bomb stops there, not
// at std::bad_alloc): Fashion-MNIST's largest file, the 60,000 training images, is 47,040,016 bytes.
std::vector<uint8_t> read_gz(const std::string& path, size_t max_bytes) {
  check_input_file(path);  // regular files only: gzopen would block on a FIFO
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open (is dataset-fashion-mnist installed, or --data pointing at it?)");
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) {
    if (out.size() + static_cast<size_t>(n) > max_bytes) {
      gzclose(f);
      throw Error(path + ": inflates to more than " + std::to_string(max_bytes) +
                  " bytes, more than a Fashion-MNIST IDX file holds");
    }
    out.insert(out.end(), buf, buf + n);
  }
  const bool failed = n < 0;
  gzclose(f);
  if (failed) throw Error(path + ": corrupt gzip data");
  return out;
}

// Fashion-MNIST's splits hold at most 60,000 examples; a little room above that for a larger IDX set.
constexpr size_t kMaxExamples = 100000;

uint32_t big_endian32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

class FashionMnist : public TrainingData {
 public:
  FashionMnist(std::vector<uint8_t> images, std::vector<uint8_t> labels, int64_t count, std::string split)
      : images_(std::move(images)), labels_(std::move(labels)), count_(count), split_(std::move(split)) {}
  int64_t size() const override { return count_; }
  int64_t num_classes() const override { return 10; }
  std::vector<int64_t> example_shape() const override { return {1, 32, 32}; }
  Example get(int64_t index, uint64_t) const override {
    // IDX: 16-byte header, then row-major 28x28 bytes per image. Pad 2 pixels of black (-1) on each side.
    const at::Tensor pixels =
        at::from_blob(const_cast<uint8_t*>(images_.data() + 16 + index * 784), {1, 28, 28}, at::kByte);
    at::Tensor x = at::full({1, 32, 32}, -1.0f);
    x.narrow(1, 2, 28).narrow(2, 2, 28).copy_(pixels.to(at::kFloat) / 127.5 - 1.0);
    return {x, int64_t{labels_[static_cast<size_t>(8 + index)]}};
  }
  std::vector<std::string> class_names() const override { return fashion_mnist_class_names(); }
  std::string description() const override {
    return "Fashion-MNIST " + split_ + ", " + std::to_string(count_) + " images, 1x32x32 pixels, 10 classes";
  }

 private:
  std::vector<uint8_t> images_, labels_;
  int64_t count_;
  std::string split_;
};

}  // namespace

std::string default_fashion_mnist_dir() {
  return "/usr/share/datasets/fashion-mnist";
}

std::shared_ptr<TrainingData> load_fashion_mnist(const std::string& dir, const std::string& split) {
  if (split != "train" && split != "t10k") throw Error("Fashion-MNIST: unknown split '" + split + "'");
  const std::string images_path = dir + "/" + split + "-images-idx3-ubyte.gz";
  const std::string labels_path = dir + "/" + split + "-labels-idx1-ubyte.gz";
  std::vector<uint8_t> images = read_gz(images_path, 16 + kMaxExamples * 784),
                       labels = read_gz(labels_path, 8 + kMaxExamples);
  if (images.size() < 16 || big_endian32(images, 0) != 0x803 || big_endian32(images, 8) != 28 ||
      big_endian32(images, 12) != 28)
    throw Error(images_path + ": not an IDX file of 28x28 images");
  if (labels.size() < 8 || big_endian32(labels, 0) != 0x801) throw Error(labels_path + ": not an IDX label file");
  const int64_t count = big_endian32(images, 4);
  if (big_endian32(labels, 4) != count || images.size() != 16 + size_t(count) * 784 ||
      labels.size() != 8 + size_t(count))
    throw Error(images_path + ": image and label counts or file sizes do not agree");
  for (size_t i = 8; i < labels.size(); ++i)
    if (labels[i] > 9) throw Error(labels_path + ": label " + std::to_string(labels[i]) + " outside 0..9");
  return std::make_shared<FashionMnist>(std::move(images), std::move(labels), count, split);
}

}  // namespace lit::train
