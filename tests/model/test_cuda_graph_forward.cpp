// CudaGraphForward: the DiT forward replayed from CUDA graphs must be the eager forward, bit for bit, with the
// same input checks; on the CPU it is a plain pass-through. CUDA tests skip without a GPU.
#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "kernels/runtime/cuda_support.h"
#include "model/backbone/cuda_graph_forward.h"
#include "model/backbone/model_io.h"
#include "sampler/generation.h"
#include "tests/model/model_test_util.h"
#include "common/error.h"

namespace lit {
namespace {

using test::error_of;

struct Inputs {
  at::Tensor x, t, y;
};

// Random latents, timesteps in [0, 1000) and labels over every row of the label table (the null class too).
Inputs random_inputs(const ModelConfig& c, int64_t batch, at::ScalarType dtype, at::Device device) {
  const auto options = at::TensorOptions().device(device);
  return {at::randn({batch, c.in_channels, c.input_size, c.input_size}, options.dtype(dtype)),
          at::randint(0, 1000, {batch}, options.dtype(at::kLong)),
          at::randint(0, c.label_table_rows(), {batch}, options.dtype(at::kLong))};
}

// ---------------------------------------------------------------------------------------------------------
// CPU (CI): a pass-through
// ---------------------------------------------------------------------------------------------------------
TEST(CudaGraphForward, OnTheCpuIsExactlyTheForward) {
  for (const ModelConfig& config : {test::tiny_dit_config(), test::tiny_lit_config()}) {
    DiT model = test::random_model(config, 3);
    CudaGraphForward graphed(model);
    at::NoGradGuard no_grad;
    for (int64_t batch : {3, 2, 3}) {
      const Inputs in = random_inputs(config, batch, at::kFloat, at::kCPU);
      const at::Tensor eager = model->forward(in.x, in.t, in.y);
      EXPECT_TRUE(at::equal(graphed(in.x, in.t, in.y), eager)) << config.summary();
      // The factory, with graphs asked for and not, and inputs that forward converts (float64 x, int32 y).
      EXPECT_TRUE(at::equal(graphed_forward(model, true)(in.x, in.t, in.y), eager));
      EXPECT_TRUE(at::equal(graphed_forward(model, false)(in.x, in.t, in.y), eager));
      EXPECT_TRUE(at::equal(graphed(in.x.to(at::kDouble), in.t, in.y.to(at::kInt)), eager));
    }
    EXPECT_EQ(graphed.num_graphs(), 0u);
    EXPECT_EQ(graphed.num_eager_shapes(), 0u);
  }
}

TEST(CudaGraphForward, ChecksTheInputsAsTheModelDoes) {
  const ModelConfig config = test::tiny_dit_config();
  DiT model = test::random_model(config);
  CudaGraphForward graphed(model);
  at::NoGradGuard no_grad;
  const Inputs in = random_inputs(config, 2, at::kFloat, at::kCPU);
  const at::Tensor bad_label = at::tensor(std::vector<int64_t>{1, config.label_table_rows()}, at::kLong);
  EXPECT_THROW(graphed(in.x, in.t, bad_label), Error);
  EXPECT_EQ(error_of([&] { graphed(in.x, in.t, bad_label); }),
            error_of([&] { model->forward(in.x, in.t, bad_label); }));
  EXPECT_NE(error_of([&] { graphed(in.x, in.t, bad_label); }).find("labels must be in"), std::string::npos);
  EXPECT_THROW(graphed(in.x, in.t, at::tensor({-1, 0}, at::kLong)), Error);
  EXPECT_THROW(graphed(in.x.narrow(1, 0, 3), in.t, in.y), Error);  // wrong channel count
  EXPECT_THROW(graphed(in.x, in.t.narrow(0, 0, 1), in.y), Error);  // t of the wrong batch
  EXPECT_THROW(graphed(in.x, in.t, in.y.to(at::kFloat)), Error);   // fractional labels
}

// ---------------------------------------------------------------------------------------------------------
// CUDA: graph replay against the eager forward, bit for bit
// ---------------------------------------------------------------------------------------------------------
// (linear attention, dtype)
class CudaGraphForwardCuda : public ::testing::TestWithParam<std::tuple<bool, at::ScalarType>> {
 protected:
  void SetUp() override {
    if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
    const auto [linear, dtype] = GetParam();
    config_ = linear ? test::tiny_lit_config() : test::tiny_dit_config();
    dtype_ = dtype;
    model_ = cuda_model(config_, dtype_);
  }

  static DiT cuda_model(const ModelConfig& config, at::ScalarType dtype) {
    DiT cpu = test::random_model(config, 11);
    DiT gpu(config, at::TensorOptions().device(at::kCUDA).dtype(dtype), /*initialize=*/false);
    load_state_dict(gpu, state_dict(cpu));
    gpu->eval();
    return gpu;
  }

  Inputs inputs(int64_t batch) const { return random_inputs(config_, batch, dtype_, at::kCUDA); }

  // graphed(in) == model->forward(in), bitwise.
  void expect_eager(CudaGraphForward& graphed, const Inputs& in, const std::string& what) {
    const at::Tensor eager = model_->forward(in.x, in.t, in.y);
    const at::Tensor out = graphed(in.x, in.t, in.y);
    ASSERT_EQ(out.sizes(), eager.sizes()) << what;
    EXPECT_EQ(out.scalar_type(), eager.scalar_type()) << what;
    EXPECT_TRUE(out.is_cuda()) << what;
    EXPECT_TRUE(at::equal(out, eager)) << what << ": max |graph - eager| "
                                       << (out.to(at::kFloat) - eager.to(at::kFloat)).abs().max().item<float>();
    EXPECT_TRUE(at::isfinite(out).all().item<bool>()) << what;
  }

  ModelConfig config_;
  at::ScalarType dtype_ = at::kFloat;
  DiT model_{nullptr};
};

TEST_P(CudaGraphForwardCuda, ReplayIsTheEagerForward) {
  at::NoGradGuard no_grad;
  std::vector<std::string> messages;
  CudaGraphForward graphed(model_, [&](const std::string& m) { messages.push_back(m); });
  expect_eager(graphed, inputs(4), "first call (capture)");
  EXPECT_EQ(graphed.num_graphs(), 1u);
  EXPECT_EQ(graphed.num_eager_shapes(), 0u);
  EXPECT_TRUE(messages.empty()) << messages.front();
  expect_eager(graphed, inputs(4), "second call (replay)");
  // Timesteps and labels on the CPU, as a caller may pass them: moved to the device first.
  const Inputs cpu_ty = inputs(4);
  expect_eager(graphed, {cpu_ty.x, cpu_ty.t.cpu(), cpu_ty.y.cpu()}, "t and y on the CPU");
  EXPECT_EQ(graphed.num_graphs(), 1u);
}

TEST_P(CudaGraphForwardCuda, NewInputsOfTheSameShapeRefillTheStaticBuffers) {
  at::NoGradGuard no_grad;
  CudaGraphForward graphed(model_);
  const Inputs a = inputs(3), b = inputs(3);
  const at::Tensor out_a = graphed(a.x, a.t, a.y);
  const at::Tensor kept = out_a.clone();
  const at::Tensor out_b = graphed(b.x, b.t, b.y);
  EXPECT_TRUE(at::equal(out_b, model_->forward(b.x, b.t, b.y)));
  EXPECT_FALSE(at::equal(out_a, out_b));  // b's result, not a replay of a's inputs
  EXPECT_TRUE(at::equal(out_a, kept));    // a returned result is the caller's: later replays leave it alone
  EXPECT_TRUE(at::equal(graphed(a.x, a.t, a.y), kept));
  // Only labels changed, only timesteps changed.
  expect_eager(graphed, {a.x, a.t, b.y}, "new labels");
  expect_eager(graphed, {a.x, b.t, a.y}, "new timesteps");
  EXPECT_EQ(graphed.num_graphs(), 1u);
}

TEST_P(CudaGraphForwardCuda, EachBatchSizeHasItsOwnGraph) {
  at::NoGradGuard no_grad;
  CudaGraphForward graphed(model_, {}, /*max_graphs=*/2);
  expect_eager(graphed, inputs(4), "batch 4");
  expect_eager(graphed, inputs(2), "batch 2");
  EXPECT_EQ(graphed.num_graphs(), 2u);
  expect_eager(graphed, inputs(4), "batch 4 again");
  expect_eager(graphed, inputs(2), "batch 2 again");
  EXPECT_EQ(graphed.num_graphs(), 2u);
  // A third shape evicts the oldest graph; every shape stays right.
  expect_eager(graphed, inputs(1), "batch 1");
  EXPECT_EQ(graphed.num_graphs(), 2u);
  expect_eager(graphed, inputs(4), "batch 4 after eviction");
  expect_eager(graphed, inputs(2), "batch 2 after eviction");
  expect_eager(graphed, inputs(1), "batch 1 again");
  EXPECT_LE(graphed.num_graphs(), 2u);
  // Fractional timesteps are another graph (another dtype of t).
  const Inputs f = inputs(4);
  expect_eager(graphed, {f.x, f.t.to(at::kFloat) + 0.5, f.y}, "fractional timesteps");
  EXPECT_EQ(graphed.num_eager_shapes(), 0u);
}

TEST_P(CudaGraphForwardCuda, GradientsOrTrainingModeRunEagerly) {
  CudaGraphForward graphed(model_);
  {
    at::AutoGradMode grad(true);
    expect_eager(graphed, inputs(2), "grad mode");
  }
  EXPECT_EQ(graphed.num_graphs(), 0u);
  at::NoGradGuard no_grad;
  model_->train();
  const Inputs in = inputs(2);
  EXPECT_EQ(graphed(in.x, in.t, in.y).sizes(), model_->forward(in.x, in.t, in.y).sizes());  // label dropout: random
  EXPECT_EQ(graphed.num_graphs(), 0u);
  model_->eval();
  expect_eager(graphed, inputs(2), "eval again");
  EXPECT_EQ(graphed.num_graphs(), 1u);
}

TEST_P(CudaGraphForwardCuda, MovingTheModelRecapturesOnTheNewParameters) {
  at::NoGradGuard no_grad;
  CudaGraphForward graphed(model_);
  expect_eager(graphed, inputs(2), "before the cast");
  const at::ScalarType other = dtype_ == at::kFloat ? at::kBFloat16 : at::kFloat;
  model_->to(other);
  dtype_ = other;
  expect_eager(graphed, inputs(2), "after the cast");
  EXPECT_EQ(graphed.num_graphs(), 1u);
}

TEST_P(CudaGraphForwardCuda, ChangingTheWeightsInPlaceRecaptures) {
  // load_state_dict and optimiser steps change parameters in place: same addresses, new values, and (LiT in
  // half precision) a merged q/kv weight that only an eager forward rebuilds.
  at::NoGradGuard no_grad;
  CudaGraphForward graphed(model_);
  const Inputs in = inputs(2);
  const at::Tensor before = graphed(in.x, in.t, in.y);
  for (at::Tensor& p : model_->parameters()) p.mul_(0.75);
  expect_eager(graphed, in, "after scaling every weight in place");
  EXPECT_FALSE(at::equal(graphed(in.x, in.t, in.y), before));
  load_state_dict(model_, state_dict(test::random_model(config_, 12)));
  expect_eager(graphed, in, "after load_state_dict");
  EXPECT_EQ(graphed.num_graphs(), 1u);
}

TEST_P(CudaGraphForwardCuda, GuidedSamplingGivesTheSameLatents) {
  SamplingSettings settings;
  settings.sampler = "ddim";
  settings.steps = 5;
  settings.guidance.scale = 4.0;
  settings.guidance.null_class = config_.num_classes;
  settings.learn_sigma = config_.learn_sigma;
  const SampleShape shape{config_.in_channels, config_.input_size, config_.input_size};
  const at::Tensor labels = at::tensor({0, 3, 9}, at::kLong);
  auto eager = [this](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
    return model_->forward(x, t, y);
  };
  const at::Tensor expected = sample_batch(eager, shape, labels, 5, 0, settings, at::kCUDA);
  const at::Tensor got = sample_batch(graphed_forward(model_, true), shape, labels, 5, 0, settings, at::kCUDA);
  EXPECT_TRUE(at::equal(got, expected));
}

INSTANTIATE_TEST_SUITE_P(TinyDiTAndLiT, CudaGraphForwardCuda,
                         ::testing::Combine(::testing::Bool(), ::testing::Values(at::kFloat, at::kBFloat16)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "LiT" : "DiT") +
                                  (std::get<1>(info.param) == at::kFloat ? "_fp32" : "_bf16");
                         });

}  // namespace
}  // namespace lit
