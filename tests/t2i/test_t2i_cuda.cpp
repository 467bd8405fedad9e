// The text-to-image models on CUDA checked against the CPU references (tests/fixtures/t2i): PixArt-Σ, LiT-T2I
// and the T5 encoder in float32 (no TF32) must match the fixtures to the CPU bound (the fixture README records
// CUDA float32 reruns of the reference code at ~2e-6 relative); bf16 must stay within the bf16 error the
// fixture records for T5 (~1.3 % of max|value|), and for PixArt within the same order. Skipped without a GPU.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include "kernels/runtime/cuda_support.h"
#include "model/t2i/pixart_io.h"
#include "model/text/t5_encoder.h"
#include "model/text/t5_loader.h"
#include "tests/t2i/t2i_test_util.h"

namespace lit {
namespace {

using test::max_rel;
using test::t2i_tensor;

#define SKIP_WITHOUT_CUDA() \
  if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary()

at::Tensor io(const std::string& name) {
  return t2i_tensor("pixart_tiny/pixart_tiny_io.safetensors", name);
}

void expect_model_on_cuda(const std::string& file, const PixArtConfig& config, const std::string& ref_file,
                          at::ScalarType dtype, double bound) {
  kernels::use_exact_float32();
  PixArtLoadOptions options;
  options.config = config;
  options.device = at::Device("cuda");
  options.dtype = dtype;
  LoadedPixArt m = load_pixart(test::fixture("t2i/" + file), options);
  at::NoGradGuard no_grad;
  const at::Tensor t = io("t"), y = io("y"), mask = io("mask");
  const double rel_8x8 =
      max_rel(m.model->forward(io("x_8x8"), t, y, mask).to(at::kFloat), t2i_tensor(ref_file, "out_8x8"));
  const double rel_12x8 =
      max_rel(m.model->forward(io("x_12x8"), t, y, mask).to(at::kFloat), t2i_tensor(ref_file, "out_12x8"));
  std::printf("[ %s ] cuda %s rel error 8x8 %.2e, 12x8 %.2e\n", file.c_str(), c10::toString(dtype), rel_8x8, rel_12x8);
  EXPECT_LE(rel_8x8, bound);
  EXPECT_LE(rel_12x8, bound);
}

TEST(T2ICuda, PixArtFloat32MatchesTheCpuReference) {
  SKIP_WITHOUT_CUDA();
  expect_model_on_cuda("pixart_tiny/pixart_tiny.safetensors", test::tiny_pixart_config(),
                       "pixart_tiny/pixart_tiny_io.safetensors", at::kFloat, 1e-5);
}

TEST(T2ICuda, LitT2IFloat32MatchesTheCpuReference) {
  SKIP_WITHOUT_CUDA();
  expect_model_on_cuda("lit_t2i_tiny/lit_t2i_tiny.safetensors", test::tiny_lit_config(),
                       "lit_t2i_tiny/lit_t2i_tiny_io.safetensors", at::kFloat, 1e-5);
}

// bf16 weights and activations: 8 mantissa bits and two blocks; the T5 fixture's bf16-vs-fp32 error (0.013 of
// max|value| over three layers) sets the scale, times 3 for PixArt's longer chain (adaLN, two attentions, MLP).
TEST(T2ICuda, PixArtAndLitT2IBf16StayNearTheReference) {
  SKIP_WITHOUT_CUDA();
  expect_model_on_cuda("pixart_tiny/pixart_tiny.safetensors", test::tiny_pixart_config(),
                       "pixart_tiny/pixart_tiny_io.safetensors", at::kBFloat16, 0.04);
  expect_model_on_cuda("lit_t2i_tiny/lit_t2i_tiny.safetensors", test::tiny_lit_config(),
                       "lit_t2i_tiny/lit_t2i_tiny_io.safetensors", at::kBFloat16, 0.04);
}

TEST(T2ICuda, T5EncoderFloat32MatchesTheCpuReference) {
  SKIP_WITHOUT_CUDA();
  kernels::use_exact_float32();
  const text::T5EncoderModel model =
      text::load_t5_encoder(text::find_t5_files(test::fixture("t2i/t5_tiny/single")), at::Device("cuda"), at::kFloat);
  const std::string f = "t5_tiny/t5_outputs.safetensors";
  at::NoGradGuard no_grad;
  const at::Tensor out =
      model.forward(t2i_tensor(f, "input_ids_L24").cuda(), t2i_tensor(f, "attention_mask_L24").cuda());
  const double rel = max_rel(out, t2i_tensor(f, "last_hidden_state_L24"));
  std::printf("[ t5_tiny ] cuda float32 rel error %.2e\n", rel);
  EXPECT_LE(rel, 1e-5);
}

}  // namespace
}  // namespace lit
