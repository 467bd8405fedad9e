// Activation checkpointing: the same loss and the same gradients as the plain backward pass, for DiT and LiT,
// in float32 and under bf16 autocast (the recomputation restores the autocast state of the forward pass).
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <optional>
#include <set>
#include <string>

#include "kernels/runtime/torch_compat.h"
#include "model/backbone/activation_checkpoint.h"
#include "tests/model/model_test_util.h"

namespace lit::test {
namespace {

struct Gradients {
  at::Tensor loss;
  std::vector<at::Tensor> grads;
  int64_t checkpoint_nodes = 0;  // CheckpointedBlock nodes in the autograd graph
};

// Counts the autograd nodes whose name contains `name`, walking the graph from `root`.
int64_t count_nodes(const at::Tensor& root, const std::string& name) {
  std::vector<torch::autograd::Node*> stack{root.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  int64_t count = 0;
  while (!stack.empty()) {
    torch::autograd::Node* node = stack.back();
    stack.pop_back();
    if (!node || !seen.insert(node).second) continue;
    if (node->name().find(name) != std::string::npos) ++count;
    for (const auto& edge : node->next_edges()) stack.push_back(edge.function.get());
  }
  return count;
}

Gradients loss_and_gradients(DiT& model, bool checkpointing, bool bf16) {
  model->set_activation_checkpointing(checkpointing);
  model->zero_grad();
  at::manual_seed(1);
  const at::Tensor x = at::randn({3, 4, 8, 8}), t = at::tensor({1, 400, 999}, at::kLong);
  const at::Tensor y = at::tensor({0, 5, 10}, at::kLong);
  Gradients g;
  {
    std::optional<compat::AutocastGuard> autocast;
    if (bf16) autocast.emplace(at::kCPU, at::kBFloat16);
    g.loss = model->forward(x, t, y).to(at::kFloat).pow(2).mean();
  }
  g.checkpoint_nodes = count_nodes(g.loss, "CheckpointedBlock");
  g.loss.backward();
  for (const auto& p : model->parameters())
    if (p.requires_grad()) g.grads.push_back(p.grad().defined() ? p.grad().clone() : at::Tensor());
  return g;
}

void expect_same_gradients(const ModelConfig& config, bool bf16) {
  DiT model = random_model(config, 3);
  const Gradients plain = loss_and_gradients(model, false, bf16);
  const Gradients checkpointed = loss_and_gradients(model, true, bf16);
  EXPECT_EQ(plain.checkpoint_nodes, 0);
  EXPECT_EQ(checkpointed.checkpoint_nodes, config.depth) << "every block goes through the checkpoint";
  EXPECT_TRUE(at::equal(plain.loss, checkpointed.loss));
  ASSERT_EQ(plain.grads.size(), checkpointed.grads.size());
  int64_t compared = 0;
  for (size_t i = 0; i < plain.grads.size(); ++i) {
    ASSERT_EQ(plain.grads[i].defined(), checkpointed.grads[i].defined()) << i;
    if (!plain.grads[i].defined()) continue;
    // Same operations on the same inputs; only the order of gradient accumulation may differ.
    EXPECT_LE(rel_error(checkpointed.grads[i], plain.grads[i]), bf16 ? 1e-5 : 1e-6) << "parameter " << i;
    ++compared;
  }
  EXPECT_GT(compared, 20);
}

TEST(ActivationCheckpointing, DiTGradientsEqualThePlainBackward) {
  expect_same_gradients(tiny_dit_config(), false);
}
TEST(ActivationCheckpointing, LiTGradientsEqualThePlainBackward) {
  expect_same_gradients(tiny_lit_config(), false);
}
TEST(ActivationCheckpointing, Bf16AutocastIsRestoredInTheRecomputation) {
  expect_same_gradients(tiny_lit_config(), true);
}

TEST(ActivationCheckpointing, SamplingWithoutGradientsIsUnchanged) {
  DiT model = random_model(tiny_dit_config(), 4);
  const at::Tensor x = at::randn({2, 4, 8, 8}), t = at::tensor({3, 4}, at::kLong), y = at::tensor({1, 2}, at::kLong);
  const at::NoGradGuard no_grad;
  const at::Tensor plain = model->forward(x, t, y);
  model->set_activation_checkpointing(true);
  const at::Tensor with_flag = model->forward(x, t, y);
  EXPECT_FALSE(with_flag.requires_grad());
  EXPECT_TRUE(at::equal(plain, with_flag));
}

}  // namespace
}  // namespace lit::test
