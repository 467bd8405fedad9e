// The fused LayerNorm + modulate operator, the modulate kernel's autograd, and the fused GELU matrix product
// the model's half-precision path uses: the CPU references in every build, the CUDA kernels against float64
// (skipped without a GPU).
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "kernels/adaln.h"
#include "kernels/runtime/cuda_support.h"
#include "kernels/linear_gelu.h"
#include "kernels/modulate.h"
#include "tests/test_util.h"

namespace lit {
namespace {

at::Tensor cpu64(const at::Tensor& t) {
  return t.detach().to(at::kCPU, at::kDouble);
}

TEST(LayerNormModulate, ReferenceIsLayerNormThenModulate) {
  at::manual_seed(5);
  const at::Tensor x = at::randn({2, 7, 24}), shift = at::randn({2, 24}), scale = at::randn({2, 24});
  const at::Tensor expected =
      kernels::modulate(at::layer_norm(x, {24}, {}, {}, 1e-6), shift, scale);  // DiT: modulate(norm(x), ...)
  EXPECT_TRUE(at::equal(kernels::layer_norm_modulate(x, shift, scale), expected));
  EXPECT_THROW(kernels::layer_norm_modulate(x, at::randn({2, 23}), scale), c10::Error);
  EXPECT_FALSE(kernels::half_precision_cuda_inference(x));
}

// DiT's MLP is fc1 -> tanh GELU -> fc2; the half-precision path fuses the GELU into fc1 where
// _addmm_activation computes the tanh form. LibTorch 1.13's CPU kernel computes the exact GELU instead: the
// probe must see that, and linear_gelu_tanh must then still give the tanh form.
TEST(FusedGelu, ProbeTellsTheTwoGelusApartAndTheOperatorIsTanh) {
  at::manual_seed(6);
  const at::Tensor x = at::randn({64, 32}) * 2, w = at::randn({48, 32}) * 0.3, b = at::randn({48});
  const at::Tensor fused = at::_addmm_activation(b, x, w.t(), 1, 1, /*use_gelu=*/true);
  const at::Tensor tanh_gelu = at::gelu(at::addmm(b, x, w.t()), "tanh");
  EXPECT_EQ(kernels::fused_gelu_is_tanh(at::kCPU), test::rel_error(fused, tanh_gelu) < 1e-6);
  EXPECT_TRUE(at::equal(kernels::linear_gelu_tanh(x, w, b), at::gelu(at::linear(x, w, b), "tanh")));
}

class AdalnCuda : public ::testing::TestWithParam<at::ScalarType> {
 protected:
  void SetUp() override {
    if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
  }
  at::TensorOptions opts() const { return at::TensorOptions().device(at::kCUDA).dtype(GetParam()); }
};

TEST_P(AdalnCuda, KernelMatchesTheFloat64Reference) {
  for (const int64_t D : {1152, 384, 72, 2048, 40}) {
    // shift and scale as chunks of one adaLN output, like the model's (strided rows).
    const at::Tensor x = at::randn({3, 37, D}, opts()) * 3 + 1;
    const auto m = at::randn({3, 6 * D}, opts()).chunk(6, 1);
    const at::Tensor out = kernels::layer_norm_modulate_cuda(x, m[0], m[1]);
    const at::Tensor ref = kernels::layer_norm_modulate_reference(cpu64(x), cpu64(m[0]), cpu64(m[1]));
    const double err = test::rel_error(out, ref);
    EXPECT_LE(err, 1e-2) << "D " << D;
    // As accurate as the unfused bf16/fp16 ops (which round twice), or better.
    const double unfused = test::rel_error(kernels::layer_norm_modulate_reference(x, m[0], m[1]), ref);
    EXPECT_LE(err, unfused * 1.05) << "D " << D;
    std::printf("  D %lld: fused %.2e, unfused %.2e\n", static_cast<long long>(D), err, unfused);
    const at::NoGradGuard no_grad;
    EXPECT_TRUE(at::equal(kernels::layer_norm_modulate(x, m[0], m[1]), out));  // the dispatch takes the kernel
  }
  // Shapes the kernel cannot take fall back to the reference.
  const at::Tensor x = at::randn({2, 5, 12}, opts()), shift = at::randn({2, 12}, opts());
  EXPECT_THROW(kernels::layer_norm_modulate_cuda(x, shift, shift), c10::Error);
  EXPECT_TRUE(at::equal(kernels::layer_norm_modulate(x, shift, shift),
                        kernels::layer_norm_modulate_reference(x, shift, shift)));
}

// With gradients recorded, modulate and layer_norm_modulate on CUDA take the ATen ops, so autograd sees them:
// the gradients equal the CPU's.
TEST_P(AdalnCuda, GradientsFlowThroughTheDispatchers) {
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  const at::Tensor x = at::randn({2, 9, 64}, f32), shift = at::randn({2, 64}, f32), scale = at::randn({2, 64}, f32),
                   g = at::randn({2, 9, 64}, f32);
  for (const bool fused_norm : {false, true}) {
    std::vector<at::Tensor> cpu = {x.clone().requires_grad_(), shift.clone().requires_grad_(),
                                   scale.clone().requires_grad_()};
    std::vector<at::Tensor> gpu;
    for (const at::Tensor& t : {x, shift, scale}) gpu.push_back(t.to(opts()).requires_grad_());
    auto run = [&](const std::vector<at::Tensor>& in) {
      return fused_norm ? kernels::layer_norm_modulate(in[0], in[1], in[2]) : kernels::modulate(in[0], in[1], in[2]);
    };
    run(cpu).backward(g);
    run(gpu).backward(g.to(opts()));
    for (size_t i = 0; i < 3; ++i) {
      ASSERT_TRUE(gpu[i].grad().defined()) << "no gradient reached input " << i;
      EXPECT_LE(test::rel_error(gpu[i].grad(), cpu[i].grad()), GetParam() == at::kFloat ? 1e-5 : 2e-2)
          << "input " << i << (fused_norm ? " (layer_norm_modulate)" : " (modulate)");
    }
  }
}

TEST_P(AdalnCuda, LinearGeluMatchesTheFloat64Reference) {
  std::printf("  CUDA _addmm_activation GELU is the tanh form: %s\n",
              kernels::fused_gelu_is_tanh(at::Device(at::kCUDA, 0)) ? "yes (fused path taken)" : "no (plain ops)");
  const at::Tensor x = at::randn({4, 64, 384}, opts()), w = at::randn({1536, 384}, opts()) * 0.05,
                   b = at::randn({1536}, opts());
  const at::NoGradGuard no_grad;
  const at::Tensor out = kernels::linear_gelu_tanh(x, w, b);
  const at::Tensor ref = at::gelu(at::linear(cpu64(x), cpu64(w), cpu64(b)), "tanh");
  EXPECT_LE(test::rel_error(out, ref), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(HalfTypes, AdalnCuda, ::testing::Values(at::kBFloat16, at::kHalf));

}  // namespace
}  // namespace lit
