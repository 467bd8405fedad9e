#include "tools/train/train_data.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "common/error.h"

namespace lit::train {

uint64_t mix_seed(uint64_t a, uint64_t b) {
  uint64_t z = a + 0x9e3779b97f4a7c15ULL * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// ---------------------------------------------------------------------------------------------------------
// Synthetic and subset data
// ---------------------------------------------------------------------------------------------------------
namespace {

class SyntheticData : public TrainingData {
 public:
  SyntheticData(std::vector<int64_t> shape, int64_t num_classes, int64_t size)
      : shape_(std::move(shape)), num_classes_(num_classes), size_(size) {}
  int64_t size() const override { return size_; }
  int64_t num_classes() const override { return num_classes_; }
  std::vector<int64_t> example_shape() const override { return shape_; }
  Example get(int64_t index, uint64_t seed) const override {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(seed, static_cast<uint64_t>(index)));
    return {at::randn(shape_, gen, at::kFloat), static_cast<int64_t>(mix_seed(index, 7) % num_classes_)};
  }
  std::string description() const override {
    return "synthetic random data, " + std::to_string(shape_[0]) + "x" + std::to_string(shape_[1]) + "x" +
           std::to_string(shape_[2]) + ", " + std::to_string(num_classes_) + " classes";
  }

 private:
  std::vector<int64_t> shape_;
  int64_t num_classes_, size_;
};

class Subset : public TrainingData {
 public:
  Subset(std::shared_ptr<TrainingData> data, int64_t count) : data_(std::move(data)), count_(count) {}
  int64_t size() const override { return count_; }
  int64_t num_classes() const override { return data_->num_classes(); }
  std::vector<int64_t> example_shape() const override { return data_->example_shape(); }
  Example get(int64_t index, uint64_t seed) const override { return data_->get(index, seed); }
  std::string description() const override {
    return data_->description() + " (first " + std::to_string(count_) + " examples)";
  }
  std::vector<std::string> class_names() const override { return data_->class_names(); }

 private:
  std::shared_ptr<TrainingData> data_;
  int64_t count_;
};

}  // namespace

std::shared_ptr<TrainingData> make_synthetic_data(std::vector<int64_t> shape, int64_t num_classes, int64_t size) {
  if (shape.size() != 3 || num_classes < 1 || size < 1) throw Error("synthetic data: bad shape or class count");
  return std::make_shared<SyntheticData>(std::move(shape), num_classes, size);
}

std::shared_ptr<TrainingData> make_subset(std::shared_ptr<TrainingData> data, int64_t count) {
  if (count <= 0 || count >= data->size()) return data;
  return std::make_shared<Subset>(std::move(data), count);
}

// ---------------------------------------------------------------------------------------------------------
// Order
// ---------------------------------------------------------------------------------------------------------
DataOrder::DataOrder(int64_t size, uint64_t seed) : size_(size), seed_(seed) {
  if (size_ < 1) throw Error("training data: the data set is empty");
}

int64_t DataOrder::index_at(int64_t position) {
  const int64_t epoch = position / size_;
  if (epoch != epoch_) {
    // std::mt19937_64 and a hand-written Fisher-Yates: the same permutation on every platform and version.
    std::mt19937_64 rng(mix_seed(seed_, static_cast<uint64_t>(epoch)));
    permutation_.resize(static_cast<size_t>(size_));
    std::iota(permutation_.begin(), permutation_.end(), int64_t{0});
    for (size_t i = permutation_.size(); i > 1; --i) std::swap(permutation_[i - 1], permutation_[rng() % i]);
    epoch_ = epoch;
  }
  return permutation_[static_cast<size_t>(position % size_)];
}

// ---------------------------------------------------------------------------------------------------------
// Loader
// ---------------------------------------------------------------------------------------------------------
BatchLoader::BatchLoader(std::shared_ptr<TrainingData> data, int64_t batch_size, uint64_t seed, int64_t position,
                         int rank, int world_size, LoaderOptions options)
    : data_(std::move(data)),
      batch_size_(batch_size),
      seed_(seed),
      position_(position),
      rank_(rank),
      world_size_(world_size),
      options_(std::move(options)),
      order_(data_->size(), seed) {
  options_.threads = std::max(1, options_.threads);
  if (batch_size_ < 1 || world_size_ < 1 || rank_ < 0 || rank_ >= world_size_)
    throw Error("training data: bad batch size, rank or world size");
}

BatchLoader::~BatchLoader() {
  if (pending_.valid()) pending_.wait();
}

void BatchLoader::load(int64_t position) {
  const int64_t first = position + rank_ * batch_size_;
  std::vector<int64_t> indices(static_cast<size_t>(batch_size_));
  for (int64_t i = 0; i < batch_size_; ++i) indices[static_cast<size_t>(i)] = order_.index_at(first + i);
  auto data = data_;
  const uint64_t seed = seed_;
  const int threads = options_.threads;
  const bool pin = options_.pin_memory;
  const auto extra = options_.extra;
  auto work = [data, seed, threads, pin, extra, first, indices]() {
    const int64_t n = static_cast<int64_t>(indices.size());
    std::vector<Example> examples(indices.size());
    auto fetch = [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i)
        examples[static_cast<size_t>(i)] =
            data->get(indices[static_cast<size_t>(i)], mix_seed(seed ^ 0x5eedULL, static_cast<uint64_t>(first + i)));
    };
    std::vector<std::thread> pool;
    std::exception_ptr error;
    std::mutex error_mutex;
    const int64_t per = (n + threads - 1) / threads;
    for (int64_t begin = 0; begin < n; begin += per)
      pool.emplace_back([&, begin] {
        try {
          fetch(begin, std::min(n, begin + per));
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mutex);
          error = std::current_exception();
        }
      });
    for (auto& t : pool) t.join();
    if (error) std::rethrow_exception(error);
    std::vector<at::Tensor> xs;
    std::vector<int64_t> labels;
    for (auto& e : examples) {
      xs.push_back(e.x);
      labels.push_back(e.label);
    }
    Batch batch;
    if (pin) {
      std::vector<int64_t> shape = xs.front().sizes().vec();
      shape.insert(shape.begin(), n);
      batch.x = at::empty(shape, at::TensorOptions().dtype(xs.front().scalar_type()).pinned_memory(true));
      at::stack_out(batch.x, xs);
    } else {
      batch.x = at::stack(xs);
    }
    batch.labels = at::tensor(labels, at::kLong);
    if (extra) {
      batch.extra = extra(batch.labels);
      if (pin)
        for (at::Tensor& e : batch.extra)
          if (e.defined()) e = e.pin_memory();
    }
    return batch;
  };
  if (options_.threads <= 1) {
    std::promise<Batch> p;
    p.set_value(work());
    pending_ = p.get_future();
  } else {
    pending_ = std::async(std::launch::async, work);
  }
}

Batch BatchLoader::next() {
  if (!pending_.valid()) load(position_);
  Batch batch = pending_.get();
  position_ += batch_size_ * world_size_;
  load(position_);  // prefetch
  return batch;
}

}  // namespace lit::train
