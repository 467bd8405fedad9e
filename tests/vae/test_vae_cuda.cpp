// The VAE on a CUDA device against the CPU reference, on fresh random inputs each run. Skipped (and says
// so) where no GPU is present.
#include <ATen/Context.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "kernels/runtime/cuda_support.h"
#include "model/vae/vae.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::fixture;
using test::rel_error;

class VaeCuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device (" << kernels::cuda_summary() << ")";
    // Full float32 on the GPU too: TF32 convolutions alone differ from the CPU by about 1e-3.
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
    cpu_ = std::make_unique<AutoencoderKL>(load_vae(fixture("vae/tiny_sd_vae")));
    VaeLoadOptions options;
    options.device = at::Device(at::kCUDA, 0);
    gpu_ = std::make_unique<AutoencoderKL>(load_vae(fixture("vae/tiny_sd_vae"), options));
  }
  std::unique_ptr<AutoencoderKL> cpu_, gpu_;
};

TEST_F(VaeCuda, EncodeMatchesCpu) {
  const at::Tensor images = at::rand({2, 3, 64, 96}) * 2 - 1;
  const DiagonalGaussian a = gpu_->encode(images), b = cpu_->encode(images);
  EXPECT_TRUE(a.mean.is_cuda());
  EXPECT_LE(rel_error(a.mean, b.mean), 1e-4);
  EXPECT_LE(rel_error(a.logvar, b.logvar), 1e-4);
}

TEST_F(VaeCuda, DecodeMatchesCpu) {
  const at::Tensor z = at::randn({2, 4, 24, 32});
  const at::Tensor a = gpu_->decode(z), b = cpu_->decode(z);
  EXPECT_TRUE(a.is_cuda());
  EXPECT_LE(rel_error(a, b), 1e-4);
}

TEST_F(VaeCuda, TiledDecodeOnTheGpuMatchesCpu) {
  const at::Tensor z = at::randn({1, 4, 48, 40});
  VaeTiling tiling;
  tiling.tile = 16;
  EXPECT_LE(rel_error(gpu_->decode(z, tiling), cpu_->decode(z)), 1e-4);
}

TEST_F(VaeCuda, Bfloat16DecodeIsClose) {
  AutoencoderKL bf16 = *gpu_;
  bf16.to(at::Device(at::kCUDA, 0), at::kBFloat16);
  const at::Tensor z = at::randn({1, 4, 16, 16});
  const double err = rel_error(bf16.decode(z).to(at::kFloat), cpu_->decode(z));
  std::printf("bfloat16 decode vs float32 CPU: relative error %.3g\n", err);
  EXPECT_LE(err, 5e-2);  // a random-weight decoder amplifies rounding more than a trained one
}

#ifdef LIT_WITH_CUDA
TEST_F(VaeCuda, TiledDecodeKeepsGpuMemoryWithinTheBudget) {
  // Bytes allocated on the GPU at the peak of a decode, beyond what was allocated before it (weights,
  // latents): untiled it grows with the image; within a budget it stays under the budget plus the output.
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const int64_t budget = int64_t{256} << 20;
  std::printf("%-8s %-10s %13s %20s %12s\n", "latent", "image", "untiled MiB", "budget 256 MiB: MiB", "output MiB");
  for (int64_t size : {64, 128, 256}) {
    const at::Tensor z = at::randn({1, 4, size, size}, at::Device(at::kCUDA, 0));
    double peaks[2];
    at::Tensor images[2];
    for (int tiled = 0; tiled < 2; ++tiled) {
      VaeTiling tiling;
      if (tiled) tiling.memory_budget = budget;
      images[tiled] = at::Tensor();
      const int64_t before = alloc::getDeviceStats(0).allocated_bytes[0].current;
      alloc::resetPeakStats(0);
      images[tiled] = gpu_->decode(z, tiling);
      peaks[tiled] = static_cast<double>(alloc::getDeviceStats(0).allocated_bytes[0].peak - before) / (1 << 20);
    }
    const double output = static_cast<double>(images[0].numel() * 4) / (1 << 20);
    std::printf("%-8s %-10s %13.1f %20.1f %12.1f\n", (std::to_string(size) + "^2").c_str(),
                (std::to_string(8 * size) + "^2").c_str(), peaks[0], peaks[1], output);
    EXPECT_LE(rel_error(images[1], images[0]), 1e-4) << size;
    EXPECT_LE(peaks[1], static_cast<double>(budget >> 20) + output) << size;
  }
}
#endif

}  // namespace
}  // namespace lit
