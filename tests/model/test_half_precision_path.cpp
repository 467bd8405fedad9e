// The whole backbone on the GPU: float32 on CUDA against the CPU (exact float32), and the half-precision
// inference path (fused linear attention, fused LayerNorm + modulate, one q/kv GEMM, GELU in the GEMM
// epilogue, fused gated residuals) against float32, next to the error of the same dtype through the plain
// operators. Skipped without a GPU.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cstdio>

#include "kernels/runtime/cuda_support.h"
#include "model/backbone/dit.h"
#include "tests/test_util.h"

namespace lit {
namespace {

// DiT's initialisation, then every parameter perturbed (the initialisation zeroes adaLN and the output).
DiT perturbed(const ModelConfig& config, const at::TensorOptions& opts) {
  at::manual_seed(11);
  DiT model(config, opts, /*initialize=*/true);
  const at::NoGradGuard no_grad;
  for (auto& item : model->named_parameters())
    if (item.key() != "pos_embed") item.value().add_(at::randn_like(item.value()) * 0.02);
  model->eval();
  return model;
}

DiT converted(const DiT& from, const at::TensorOptions& opts) {
  DiT model(from->config(), opts, /*initialize=*/false);
  const at::NoGradGuard no_grad;
  auto src = from->named_parameters();
  for (auto& item : model->named_parameters()) item.value().copy_(src[item.key()]);
  model->eval();
  return model;
}

class HalfPrecisionModel : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
    kernels::use_exact_float32();
  }
};

TEST_P(HalfPrecisionModel, CudaMatchesCpuAndBf16MatchesFloat32) {
  const ModelConfig config = ModelConfig::preset(GetParam(), 256);  // N = 256 tokens
  const auto cuda32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  DiT cpu = perturbed(config, at::kFloat);
  DiT f32 = converted(cpu, cuda32);
  const int64_t B = 4;
  at::manual_seed(12);
  const at::Tensor x = at::randn({B, config.in_channels, config.input_size, config.input_size});
  const at::Tensor t = at::randint(0, 1000, {B}, at::kLong), y = at::randint(0, config.num_classes, {B}, at::kLong);

  const at::NoGradGuard no_grad;
  const at::Tensor out_cpu = cpu->forward(x, t, y);
  const at::Tensor out32 = f32->forward(x, t, y);
  EXPECT_LE(test::rel_error(out32, out_cpu), 1e-5) << "float32 on CUDA vs the CPU";

  for (const at::ScalarType dtype : {at::kBFloat16, at::kHalf}) {
    DiT half = converted(cpu, cuda32.dtype(dtype));
    const at::Tensor fused = half->forward(x, t, y);  // no grad: the fused inference path
    at::Tensor plain;
    {
      const at::AutoGradMode grad_on(true);  // parameters require grad: the plain operators (training's path)
      plain = half->forward(x, t, y).detach();
    }
    const double err_fused = test::rel_error(fused, out32), err_plain = test::rel_error(plain, out32);
    std::printf("  %s %s vs float32: fused path %.2e, plain ops %.2e\n", GetParam().c_str(),
                dtype == at::kBFloat16 ? "bf16" : "fp16", err_fused, err_plain);
    EXPECT_TRUE(at::isfinite(fused).all().item<bool>());
    EXPECT_LE(err_fused, dtype == at::kBFloat16 ? 3e-2 : 5e-3);
    EXPECT_LE(err_fused, 1.25 * err_plain) << "the fused path is less accurate than the plain ops";
  }
}

INSTANTIATE_TEST_SUITE_P(SmallPresets, HalfPrecisionModel, ::testing::Values("LiT-S/2", "DiT-S/2"),
                         [](const auto& info) { return info.param.substr(0, 3); });

}  // namespace
}  // namespace lit
