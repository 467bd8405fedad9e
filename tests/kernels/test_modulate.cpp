#include <gtest/gtest.h>

#include "kernels/runtime/cuda_support.h"
#include "kernels/modulate.h"
#include "tests/test_util.h"

namespace lit {
namespace {

TEST(Modulate, ReferenceMatchesTheFormulaElementByElement) {
  const at::Tensor x = at::randn({2, 3, 5}), shift = at::randn({2, 5}), scale = at::randn({2, 5});
  const at::Tensor out = kernels::modulate(x, shift, scale);
  auto xa = x.accessor<float, 3>();
  auto sh = shift.accessor<float, 2>();
  auto sc = scale.accessor<float, 2>();
  auto oa = out.accessor<float, 3>();
  for (int b = 0; b < 2; ++b)
    for (int n = 0; n < 3; ++n)
      for (int d = 0; d < 5; ++d) EXPECT_FLOAT_EQ(oa[b][n][d], xa[b][n][d] * (1 + sc[b][d]) + sh[b][d]);
}

TEST(Modulate, RejectsMismatchedShapes) {
  EXPECT_THROW(kernels::modulate(at::randn({2, 3, 5}), at::randn({2, 4}), at::randn({2, 4})), c10::Error);
  EXPECT_THROW(kernels::modulate(at::randn({2, 3, 5}), at::randn({2, 5}), at::randn({1, 5})), c10::Error);
  EXPECT_THROW(kernels::modulate(at::randn({3, 5}), at::randn({3, 5}), at::randn({3, 5})), c10::Error);
}

class ModulateCuda : public ::testing::TestWithParam<std::tuple<at::ScalarType, int>> {
 protected:
  void SetUp() override {
    if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
  }
};

TEST_P(ModulateCuda, MatchesTheReferenceOnRandomInputs) {
  const auto [dtype, version] = GetParam();
  const double tol = dtype == at::kFloat ? 1e-4 : 1e-2;
  // Shapes from DiT blocks (B, N, D) plus an odd D that only v1 handles.
  const std::vector<std::array<int64_t, 3>> shapes = {{2, 256, 1152}, {4, 64, 384}, {3, 17, 40}, {1, 5, 7}};
  for (const auto& s : shapes) {
    const auto opts = at::TensorOptions().device(at::kCUDA).dtype(dtype);
    const at::Tensor x = at::randn({s[0], s[1], s[2]}, opts), shift = at::randn({s[0], s[2]}, opts),
                     scale = at::randn({s[0], s[2]}, opts);
    const bool vec_ok = (s[2] * x.element_size()) % 16 == 0;
    if (version == 2 && !vec_ok) {
      EXPECT_THROW(kernels::modulate_cuda(x, shift, scale, version), c10::Error);
      continue;
    }
    const at::Tensor ref =
        kernels::modulate_reference(x.cpu().to(at::kDouble), shift.cpu().to(at::kDouble), scale.cpu().to(at::kDouble));
    const at::Tensor out = kernels::modulate_cuda(x, shift, scale, version);
    const double err = test::rel_error(out, ref);
    EXPECT_LE(err, tol) << "shape " << s[0] << "x" << s[1] << "x" << s[2];
    // Also against the ATen reference evaluated on the GPU in the same dtype (same rounding steps).
    EXPECT_LE(test::rel_error(out, kernels::modulate_reference(x, shift, scale)), tol);
    EXPECT_TRUE(at::isfinite(out).all().item<bool>());
  }
}

TEST_P(ModulateCuda, DispatchUsesTheKernelForCudaTensors) {
  const auto [dtype, version] = GetParam();
  if (version != 1) GTEST_SKIP() << "covered once per dtype";
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(dtype);
  const at::Tensor x = at::randn({2, 8, 64}, opts), shift = at::randn({2, 64}, opts), scale = at::randn({2, 64}, opts);
  const at::Tensor out = kernels::modulate(x, shift, scale);
  EXPECT_TRUE(out.is_cuda());
  EXPECT_LE(test::rel_error(out, kernels::modulate_reference(x, shift, scale)), dtype == at::kFloat ? 1e-6 : 1e-2);
}

INSTANTIATE_TEST_SUITE_P(AllDtypesAndVersions, ModulateCuda,
                         ::testing::Combine(::testing::Values(at::kFloat, at::kHalf, at::kBFloat16),
                                            ::testing::Values(1, 2)));

}  // namespace
}  // namespace lit
