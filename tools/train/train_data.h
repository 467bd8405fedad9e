// Training data as the trainer sees it: a numbered set of labelled examples (images in [-1, 1] or scaled VAE
// latents), a deterministic order over them, and a loader that assembles batches on background threads.
//
// Reproducibility: every example's randomness (a horizontal flip, a fresh latent drawn from a stored posterior)
// comes from a seed derived from the run seed and the example's position in the data stream, never from a
// thread's or a global generator, so a batch is the same whatever the thread count and after a resume.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace lit::train {

struct Example {
  at::Tensor x;  // (C, H, W) float32
  int64_t label = 0;
};

class TrainingData {
 public:
  virtual ~TrainingData() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  virtual std::vector<int64_t> example_shape() const = 0;  // {C, H, W}
  // Example `index` (0 <= index < size()); `seed` drives its randomness. Thread-safe.
  virtual Example get(int64_t index, uint64_t seed) const = 0;
  // One line for the log: "Fashion-MNIST train, 60000 images, 1x32x32, 10 classes".
  virtual std::string description() const = 0;
  // Human-readable class names in label order, when the data set has them (saved into the checkpoints as
  // "class_names", so `lit generate --class Sneaker` works); empty otherwise.
  virtual std::vector<std::string> class_names() const { return {}; }
};

// Random examples (standard normal, labels uniform), for speed runs with no data set at hand.
std::shared_ptr<TrainingData> make_synthetic_data(std::vector<int64_t> shape, int64_t num_classes,
                                                  int64_t size = 1 << 20);

// The first `count` examples of another data set (for overfitting tests and quick runs).
std::shared_ptr<TrainingData> make_subset(std::shared_ptr<TrainingData> data, int64_t count);

// A 64-bit mix of two values (splitmix64), for per-example seeds.
uint64_t mix_seed(uint64_t a, uint64_t b);

// The order examples are drawn in: epoch e is a permutation of 0..size-1 drawn from a generator seeded by
// (seed, e). A stream position p (examples consumed by all ranks together) maps to epoch p / size, slot
// p % size. Each step consumes batch * world_size positions; rank r takes the r-th slice of batch of them.
class DataOrder {
 public:
  DataOrder(int64_t size, uint64_t seed);
  int64_t index_at(int64_t position);  // caches the current epoch's permutation

 private:
  int64_t size_;
  uint64_t seed_;
  int64_t epoch_ = -1;
  std::vector<int64_t> permutation_;
};

struct Batch {
  at::Tensor x;                   // (B, C, H, W) float32, CPU (page-locked with LoaderOptions::pin_memory)
  at::Tensor labels;              // (B,) int64, CPU
  std::vector<at::Tensor> extra;  // what LoaderOptions::extra made of the labels (e.g. the captions)
};

struct LoaderOptions {
  int threads = 2;  // decoding the examples; 1: in line, nothing prepared ahead
  // Page-locked (pinned) host memory for x and the extras, so that a non-blocking copy to a CUDA
  // device overlaps the step (needs LibTorch with CUDA; the trainers set it when they train on CUDA).
  bool pin_memory = false;
  // Run on the loader's thread after the batch is assembled, with its labels: per-batch data kept beside the
  // examples (the caption features or token ids of a text model's batch), prepared ahead as x is.
  std::function<std::vector<at::Tensor>(const at::Tensor& labels)> extra;
};

// Assembles the batches of one rank, starting at a stream position, with the next batch prepared in the
// background while the current one trains. Not thread-safe itself (one consumer).
class BatchLoader {
 public:
  BatchLoader(std::shared_ptr<TrainingData> data, int64_t batch_size, uint64_t seed, int64_t position = 0, int rank = 0,
              int world_size = 1, LoaderOptions options = {});
  ~BatchLoader();
  Batch next();  // the batch at the current position; advances it by batch * world_size
  int64_t position() const { return position_; }

 private:
  void load(int64_t position);  // starts assembling the batch at `position` into pending_

  std::shared_ptr<TrainingData> data_;
  int64_t batch_size_;
  uint64_t seed_;
  int64_t position_;
  int rank_, world_size_;
  LoaderOptions options_;
  DataOrder order_;
  std::future<Batch> pending_;
};

}  // namespace lit::train
