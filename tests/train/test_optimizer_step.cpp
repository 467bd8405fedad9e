// The multi-tensor AdamW step and gradient clipping against LibTorch's own AdamW::step and the clipping rule.
#include <gtest/gtest.h>
#include <torch/optim/adamw.h>

#include <cmath>
#include <vector>

#include "common/error.h"
#include "kernels/runtime/cuda_support.h"
#include "tools/train/optimizer_step.h"

namespace lit::train {
namespace {

std::vector<at::Tensor> make_parameters(uint64_t seed) {
  at::manual_seed(seed);
  std::vector<at::Tensor> out;
  for (const auto& shape : std::vector<std::vector<int64_t>>{{7, 5}, {5}, {3, 4, 2}, {1}, {16, 16}})
    out.push_back(at::randn(shape).set_requires_grad(true));
  return out;
}

std::vector<at::Tensor> clones(const std::vector<at::Tensor>& ps) {
  std::vector<at::Tensor> out;
  for (const auto& p : ps) out.push_back(p.detach().clone().set_requires_grad(true));
  return out;
}

// Sets the same pseudo-random gradient (of step k) on both parameter lists.
void set_gradients(std::vector<at::Tensor>& a, std::vector<at::Tensor>& b, int k) {
  at::manual_seed(1000 + k);
  for (size_t i = 0; i < a.size(); ++i) {
    const at::Tensor g = at::randn_like(a[i]) * (1.0 + k);
    a[i].mutable_grad() = g.clone();
    b[i].mutable_grad() = g.clone();
  }
}

double max_difference(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, (a[i] - b[i]).abs().max().item<double>());
  return worst;
}

void set_lr(torch::optim::AdamW& o, double lr) {
  for (auto& g : o.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

TEST(OptimizerStep, AdamWEqualsLibTorchStepForStep) {
  auto ref = make_parameters(3), ours = clones(ref);
  const auto options = torch::optim::AdamWOptions(1e-2).weight_decay(0.03).betas({0.9, 0.95}).eps(1e-7);
  torch::optim::AdamW ref_opt(ref, options), our_opt(ours, options);
  for (int k = 0; k < 6; ++k) {
    set_lr(ref_opt, 1e-2 * (k + 1) / 6);  // a warm-up changes the rate every step
    set_lr(our_opt, 1e-2 * (k + 1) / 6);
    set_gradients(ref, ours, k);
    ref_opt.step();
    adamw_step(our_opt);
    // On the CPU the multi-tensor operators are the per-tensor ones, in the same order: bitwise equal.
    EXPECT_EQ(max_difference(ref, ours), 0.0) << "step " << k;
  }
  EXPECT_GT(max_difference(ref, make_parameters(3)), 1e-3);  // the parameters did move
}

TEST(OptimizerStep, KeepsItsStateWhereAdamWKeepsIt) {
  // Three steps here, then LibTorch's step on the same optimizer: equal to four LibTorch steps only if the
  // moments and step counts live in AdamW's own state (which optimizer.pt saves and loads).
  auto ref = make_parameters(5), ours = clones(ref);
  torch::optim::AdamW ref_opt(ref, torch::optim::AdamWOptions(3e-3)), our_opt(ours, torch::optim::AdamWOptions(3e-3));
  for (int k = 0; k < 4; ++k) {
    set_gradients(ref, ours, k);
    ref_opt.step();
    if (k < 3)
      adamw_step(our_opt);
    else
      our_opt.step();
  }
  EXPECT_EQ(max_difference(ref, ours), 0.0);
  EXPECT_EQ(our_opt.state().size(), ours.size());
}

TEST(OptimizerStep, SkipsParametersWithoutGradients) {
  auto ps = make_parameters(7);
  const at::Tensor before = ps[1].detach().clone();
  torch::optim::AdamW opt(ps, torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  for (size_t i = 0; i < ps.size(); ++i)
    if (i != 1) ps[i].mutable_grad() = at::ones_like(ps[i]);
  adamw_step(opt);
  EXPECT_TRUE(at::equal(ps[1].detach(), before));  // not even decayed, as AdamW::step
  EXPECT_EQ(opt.state().size(), ps.size() - 1);
}

TEST(OptimizerStep, RefusesAmsgrad) {
  auto ps = make_parameters(9);
  torch::optim::AdamW opt(ps, torch::optim::AdamWOptions(1e-2).amsgrad(true));
  for (auto& p : ps) p.mutable_grad() = at::ones_like(p);
  EXPECT_THROW(adamw_step(opt), Error);
}

TEST(OptimizerStep, ClipsByTheGlobalNorm) {
  // Gradients of norm 5 (3 and 4 in two tensors), clipped to 1: scaled by 1 / (5 + 1e-6), norm reported 5.
  std::vector<at::Tensor> grads = {at::full({1}, 3.0f), at::full({4}, 2.0f)};
  const at::Tensor norm = clip_grad_norm(grads, 1.0);
  EXPECT_NEAR(norm.item<double>(), 5.0, 1e-6);
  EXPECT_NEAR(grads[0].item<double>(), 3.0 / (5.0 + 1e-6), 1e-7);
  EXPECT_NEAR(grads[1][0].item<double>(), 2.0 / (5.0 + 1e-6), 1e-7);
  // Below the bound, and with clipping off, the gradients are left exactly as they were.
  std::vector<at::Tensor> small = {at::full({2}, 0.25f)};
  EXPECT_NEAR(clip_grad_norm(small, 1.0).item<double>(), std::sqrt(0.125), 1e-7);
  EXPECT_EQ(small[0][0].item<float>(), 0.25f);
  EXPECT_NEAR(clip_grad_norm(grads = {at::full({1}, 30.0f)}, 0).item<double>(), 30.0, 1e-5);
  EXPECT_EQ(grads[0].item<float>(), 30.0f);
}

TEST(OptimizerStep, CudaMultiTensorKernelsMatchLibTorch) {
  if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device";
  // On CUDA the multi-tensor kernels fuse each operator over many tensors (same order, other rounding), and
  // clipping keeps its factor on the device: equal to LibTorch's AdamW after clipping to float32 rounding.
  std::vector<at::Tensor> ref, ours;
  for (const auto& p : make_parameters(11)) ref.push_back(p.detach().cuda().set_requires_grad(true));
  ours = clones(ref);
  const auto options = torch::optim::AdamWOptions(1e-2).weight_decay(0.01);
  torch::optim::AdamW ref_opt(ref, options), our_opt(ours, options);
  for (int k = 0; k < 5; ++k) {
    set_gradients(ref, ours, k);
    double sq = 0;
    std::vector<at::Tensor> ref_grads, our_grads;
    for (size_t i = 0; i < ref.size(); ++i) {
      sq += ref[i].grad().pow(2).sum().item<double>();
      ref_grads.push_back(ref[i].grad());
      our_grads.push_back(ours[i].grad());
    }
    const double norm = std::sqrt(sq), max_norm = 5.0;  // the gradients grow with k: clipped from k = 1 on
    if (norm > max_norm)
      for (auto& g : ref_grads) g.mul_(max_norm / (norm + 1e-6));
    EXPECT_NEAR(clip_grad_norm(our_grads, max_norm).item<double>(), norm, 1e-5 * norm);
    ref_opt.step();
    adamw_step(our_opt);
    EXPECT_LT(max_difference(ref, ours), 1e-6) << "step " << k;
  }
}

}  // namespace
}  // namespace lit::train
