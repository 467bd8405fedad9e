// lit train-classifier --data fashion-mnist[:DIR] -o FILE: trains the Fashion-MNIST classifier
// (model/fmnist_classifier.h) whose features `lit fid --feature-network FILE` measures FD-FMNIST in.
// AdamW with a cosine learning-rate decay, random horizontal flips and 1-pixel shifts; one line per epoch with
// the training loss and the accuracy on the t10k split; FILE is rewritten (atomically) after every epoch, so
// an interruption loses at most one. The weights are rounded to float16 before each evaluation and stored so:
// the accuracy printed and recorded is the one of the file.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>

#include "kernels/runtime/cuda_support.h"
#include "model/eval/fmnist_classifier.h"
#include "tools/cli/commands.h"
#include "tools/train/fashion_mnist.h"
#include "common/error.h"

namespace lit::cli {
namespace {

struct TrainClassifierOptions {
  std::string data = "fashion-mnist";
  std::string output;
  int64_t epochs = 4;
  int64_t batch_size = 128;
  double lr = 1e-3;
  std::string device = "cpu";
  uint64_t seed = 0;
};

struct Split {
  at::Tensor x;       // (N, 1, 32, 32) float32 in [-1, 1]
  at::Tensor labels;  // (N,) int64
};

Split load_split(const std::string& dir, const std::string& split) {
  const auto data = train::load_fashion_mnist(dir, split);
  std::vector<at::Tensor> xs;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < data->size(); ++i) {
    auto example = data->get(i, 0);
    xs.push_back(example.x);
    labels.push_back(example.label);
  }
  return {at::stack(xs), at::tensor(labels, at::kLong)};
}

// Random horizontal flips and shifts of up to one pixel (the border filled with the background, -1).
at::Tensor augment(const at::Tensor& x, at::Generator& gen) {
  const int64_t n = x.size(0), size = x.size(2);
  const at::Tensor flip = at::rand({n}, gen).lt(0.5).view({-1, 1, 1, 1});
  const at::Tensor padded = at::constant_pad_nd(at::where(flip, x.flip({3}), x), {1, 1, 1, 1}, -1.0);
  const at::Tensor offsets = at::randint(0, 3, {n, 2}, gen);
  const auto o = offsets.accessor<int64_t, 2>();
  at::Tensor out = at::empty_like(x);
  for (int64_t i = 0; i < n; ++i) out[i].copy_(padded[i].narrow(1, o[i][0], size).narrow(2, o[i][1], size));
  return out;
}

// Fraction of the split the model classifies correctly (eval mode).
double accuracy(FmnistClassifier& model, const Split& split, at::Device device) {
  at::NoGradGuard no_grad;
  model->eval();
  int64_t correct = 0;
  for (int64_t b = 0; b < split.x.size(0); b += 1000) {
    const int64_t n = std::min<int64_t>(1000, split.x.size(0) - b);
    const at::Tensor logits = model->forward(split.x.narrow(0, b, n).to(device));
    correct += logits.argmax(1).cpu().eq(split.labels.narrow(0, b, n)).sum().item<int64_t>();
  }
  model->train();
  return static_cast<double>(correct) / static_cast<double>(split.x.size(0));
}

std::string fixed(double v, int digits) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

void run_train_classifier(const TrainClassifierOptions& opt) {
  if (opt.output.empty()) throw Error("-o FILE: where to write the classifier");
  if (opt.epochs < 1) throw Error("--epochs must be at least 1");
  if (opt.batch_size < 2) throw Error("--batch-size must be at least 2 (batch norm)");
  if (!(opt.lr > 0)) throw Error("--lr must be positive");
  std::string dir = train::default_fashion_mnist_dir();
  if (opt.data.rfind("fashion-mnist:", 0) == 0)
    dir = opt.data.substr(14);
  else if (opt.data != "fashion-mnist")
    throw Error("--data " + opt.data + ": the classifier trains on fashion-mnist[:DIR] only");
  const at::Device device = kernels::parse_device(opt.device);

  const Split train_split = load_split(dir, "train"), test_split = load_split(dir, "t10k");
  std::cout << "data        Fashion-MNIST " << dir << ": " << train_split.x.size(0) << " training, "
            << test_split.x.size(0) << " test images (1x32x32, 10 classes)\n";
  at::manual_seed(opt.seed);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(opt.seed);
  FmnistClassifier model;
  model->to(device);
  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(opt.lr).weight_decay(1e-4));
  const int64_t n = train_split.x.size(0);
  const int64_t steps_per_epoch = (n + opt.batch_size - 1) / opt.batch_size, total = steps_per_epoch * opt.epochs;
  std::cout << "training    " << opt.epochs << " epochs of " << steps_per_epoch << " steps, batch " << opt.batch_size
            << ", AdamW lr " << opt.lr << " (cosine decay), " << at::get_num_threads() << " CPU threads, device "
            << device << std::endl;

  const auto start = std::chrono::steady_clock::now();
  int64_t step = 0;
  for (int64_t epoch = 1; epoch <= opt.epochs; ++epoch) {
    const at::Tensor order = at::randperm(n, gen);
    double loss_sum = 0;
    for (int64_t b = 0; b < n; b += opt.batch_size, ++step) {
      const at::Tensor idx = order.narrow(0, b, std::min(opt.batch_size, n - b));
      const at::Tensor x = augment(train_split.x.index_select(0, idx), gen).to(device);
      const at::Tensor y = train_split.labels.index_select(0, idx).to(device);
      const double lr = opt.lr * 0.5 * (1 + std::cos(M_PI * static_cast<double>(step) / static_cast<double>(total)));
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer.zero_grad();
      const at::Tensor loss = at::nll_loss(at::log_softmax(model->forward(x), 1), y);
      loss.backward();
      optimizer.step();
      loss_sum += loss.item<double>() * static_cast<double>(idx.size(0));
    }
    {
      // Round to float16, the precision the file keeps, so that the accuracy is the file's.
      at::NoGradGuard no_grad;
      for (auto& [name, t] : model->named_state()) t.copy_(t.to(at::kHalf).to(at::kFloat));
    }
    const double acc = accuracy(model, test_split, device);
    save_fmnist_classifier(opt.output, model, {{"test_accuracy", fixed(acc, 4)}, {"epochs", std::to_string(epoch)}},
                           at::kHalf);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::cout << "epoch " << epoch << "/" << opt.epochs << "  train loss " << fixed(loss_sum / n, 4)
              << "  test accuracy " << fixed(acc, 4) << " (t10k)  " << fixed(seconds, 0) << " s" << std::endl;
  }
  std::cout << "wrote       " << opt.output << " (float16 weights)" << std::endl;
}

}  // namespace

void add_train_classifier_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train-classifier",
                                 "train the Fashion-MNIST classifier whose features `lit fid --feature-network` uses");
  static TrainClassifierOptions opt;
  cmd->add_option("--data", opt.data, "fashion-mnist[:DIR] (train and t10k splits)")->capture_default_str();
  cmd->add_option("-o,--output", opt.output, "the classifier file (.safetensors), rewritten after every epoch")
      ->required();
  cmd->add_option("--epochs", opt.epochs, "passes over the training split")->capture_default_str();
  cmd->add_option("--batch-size", opt.batch_size, "images per step")->capture_default_str();
  cmd->add_option("--lr", opt.lr, "peak learning rate (AdamW, cosine decay to 0)")->capture_default_str();
  cmd->add_option("--device", opt.device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--seed", opt.seed, "initialisation, order and augmentation")->capture_default_str();
  cmd->callback([] { run_train_classifier(opt); });
}

}  // namespace lit::cli
