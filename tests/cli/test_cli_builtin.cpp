// The built-in Fashion-MNIST model as the README's first command uses it: `lit generate` without --model,
// class names, and the labelled contact sheet.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "kernels/runtime/cuda_support.h"
#include "model/backbone/builtin_model.h"
#include "model/backbone/class_labels.h"
#include "model/backbone/model_io.h"
#include "tests/test_util.h"
#include "tools/cli/contact_sheet.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"

namespace fs = std::filesystem;

namespace lit {
namespace {

using test::run_command;
using test::temp_path;

const std::string kLit = LIT_CLI_PATH;

using test::fresh_temp_dir;
TEST(BuiltinModel, IsShippedWithItsConfigAndClassNames) {
  const std::optional<std::string> path = find_builtin_model();
  ASSERT_TRUE(path.has_value()) << "model/builtin/lit-fmnist.safetensors is part of the repository";
  const LoadedModel m = load_model(*path);
  EXPECT_EQ(m.config.in_channels, 1);
  EXPECT_EQ(m.config.input_size, 32);
  EXPECT_EQ(m.config.num_classes, 10);
  EXPECT_TRUE(m.config.is_linear());
  EXPECT_LE(fs::file_size(*path), 20u << 20) << "small enough for git";
  EXPECT_EQ(class_names_for_model(10, m.metadata).names, fashion_mnist_class_names());
}

TEST(BuiltinModel, GenerateWithoutModelUsesItWithClassNames) {
  const std::string dir = fresh_temp_dir("builtin_run");
  const auto r =
      run_command(kLit + " generate -q --class Sneaker --class 'ankle boot' -n 2 --sampler dpm++2m --steps 3 -o " +
                  dir + " --grid " + dir + "/sheet.png --grid-scale 2 --grid-labels --grid-columns 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const GenerationParams p =
      parse_generation_params(find_parameters_text(read_png_info(dir + "/000001.png").text).value_or(""));
  EXPECT_EQ(p.prompt, "Ankle boot");
  EXPECT_EQ(p.get("Model").value_or(""), "lit-fmnist.safetensors");
  EXPECT_EQ(p.get("Class").value_or(""), "9");
  const at::Tensor sheet = read_image(dir + "/sheet.png");
  // Two 64x64 images side by side, 2-pixel borders, a 14-pixel caption strip under each.
  EXPECT_EQ(sheet.size(0), 2 + 64 + 14 + 2);
  EXPECT_EQ(sheet.size(1), 2 + 2 * (64 + 2));
  // The caption strip has text in it (white pixels on black); the border above it does not.
  EXPECT_GT(sheet.narrow(0, 2 + 64, 14).max().item<int>(), 200);
  EXPECT_EQ(sheet.narrow(0, 0, 2).max().item<int>(), 0);
}

// The built-in model's 10 classes, seed 7, 20 DDIM steps, on `device` in `dtype`, into dir/<device>-<dtype>.
std::string generate_all_classes(const std::string& dir, const std::string& device, const std::string& dtype) {
  const std::string out = dir + "/" + device + "-" + dtype;
  const auto r = run_command(kLit + " generate -q --all-classes -n 10 --seed 7 --sampler ddim --steps 20 --device " +
                             device + " --dtype " + dtype + " -o " + out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return out;
}

struct ImageDifference {
  double mean = 0;   // mean |a - b| over the 10 images, in 8-bit units
  double worst = 0;  // the largest per-image mean
};

ImageDifference difference(const std::string& a_dir, const std::string& b_dir) {
  ImageDifference d;
  for (int i = 0; i < 10; ++i) {
    char name[16];
    std::snprintf(name, sizeof(name), "/%06d.png", i);
    const at::Tensor a = read_image(a_dir + name).to(at::kFloat), b = read_image(b_dir + name).to(at::kFloat);
    EXPECT_EQ(a.sizes(), b.sizes()) << name;
    if (a.sizes() != b.sizes()) continue;
    const double mean_abs = (a - b).abs().mean().item<double>();
    d.mean += mean_abs / 10;
    d.worst = std::max(d.worst, mean_abs);
  }
  return d;
}

// bf16 on the CPU (the composed attention and ATen's bf16 operators) against float32, same seed: the images
// move by bf16's error and no more. Measured on the 2-core CPU machine with the 2026-12-02 built-in model: 0.89 /
// 255 on average, 1.15 for the worst image (the earlier model: 1.15, 1.58); the bounds leave room for other BLAS
// builds.
TEST(BuiltinModel, CpuBf16ImagesStayCloseToFloat32) {
  const std::string dir = fresh_temp_dir("builtin_bf16");
  const ImageDifference d =
      difference(generate_all_classes(dir, "cpu", "fp32"), generate_all_classes(dir, "cpu", "bf16"));
  std::printf("  built-in model, 10 images: mean |cpu fp32 - cpu bf16| = %.2f / 255 (worst image %.2f)\n", d.mean,
              d.worst);
  EXPECT_GT(d.mean, 0.0) << "bf16 must actually have been used";
  EXPECT_LE(d.mean, 3.0);
  EXPECT_LE(d.worst, 6.0);
}

// The same seed on the GPU in bf16 (the fused half-precision path) and on the CPU in float32 gives the same
// images up to bf16's error, which the same run measures on the CPU (CPU bf16 against CPU float32): the GPU's
// difference must be of that order (at most twice it). Skipped without a GPU.
TEST(BuiltinModel, CudaBf16ImagesEqualTheCpuImages) {
  if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine: " << kernels::cuda_summary();
  const std::string dir = fresh_temp_dir("builtin_cuda");
  const std::string cpu = generate_all_classes(dir, "cpu", "fp32");
  const ImageDifference bf16 = difference(cpu, generate_all_classes(dir, "cpu", "bf16"));
  const ImageDifference gpu = difference(cpu, generate_all_classes(dir, "cuda", "bf16"));
  std::printf(
      "  built-in model, 10 images: mean |cpu fp32 - cuda bf16| = %.2f / 255 (worst image %.2f); "
      "cpu bf16: %.2f (%.2f)\n",
      gpu.mean, gpu.worst, bf16.mean, bf16.worst);
  EXPECT_LE(gpu.mean, 2 * bf16.mean);
  EXPECT_LE(gpu.worst, 2 * bf16.worst);
}

// --attention picks linear attention's implementation for the run (the built-in model is a LiT): each
// name runs and gives images within float32 rounding of the others; any other name is a usage error.
TEST(BuiltinModel, AttentionOptionChoosesTheImplementation) {
  const std::string dir = fresh_temp_dir("builtin_attention");
  for (const char* impl : {"reference", "composed"}) {
    const auto r = run_command(kLit + " generate -q --class 3 -n 2 --sampler ddim --steps 4 --attention " + impl +
                               " -o " + dir + "/" + impl);
    ASSERT_EQ(r.exit_code, 0) << impl << ": " << r.output;
  }
  for (const char* name : {"/000000.png", "/000001.png"}) {
    const at::Tensor a = read_image(dir + "/reference" + name).to(at::kFloat);
    const at::Tensor b = read_image(dir + "/composed" + name).to(at::kFloat);
    EXPECT_LE((a - b).abs().max().item<float>(), 1.0f) << name;  // at most one 8-bit step apart
  }
  const auto bad = run_command(kLit + " generate -q -n 1 --attention fastest -o " + dir + "/bad");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("--attention"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir + "/bad/000000.png"));
}

TEST(BuiltinModel, GridOptionsAreCheckedBeforeSampling) {
  const std::string dir = fresh_temp_dir("builtin_bad");
  for (const std::string& args : std::vector<std::string>{"--grid-labels", "--grid " + dir + "/s.png --grid-scale 0",
                                                          "--all-classes --class Bag", "--class Jacket"}) {
    const auto r = run_command(kLit + " generate -q -n 1 --steps 2 -o " + dir + " " + args);
    EXPECT_EQ(r.exit_code, 1) << args << ": " << r.output;
    EXPECT_EQ(r.output.rfind("lit: error: ", 0), 0u) << r.output;
    EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "one line: " << r.output;
  }
}

TEST(ContactSheet, LaysOutScalesAndRefusesMismatches) {
  std::vector<at::Tensor> images;
  for (int i = 0; i < 5; ++i) images.push_back(at::full({4, 6, 3}, 10 * (i + 1), at::kByte));
  cli::SheetOptions o;
  o.columns = 2;
  o.scale = 3;
  const at::Tensor sheet = cli::contact_sheet(images, o);
  EXPECT_EQ(sheet.sizes(), (std::vector<int64_t>{2 + 3 * (12 + 2), 2 + 2 * (18 + 2), 3}));
  // Image 3 (row 1, column 1), enlarged 3 times, sits where it should.
  EXPECT_TRUE(at::equal(sheet.narrow(0, 2 + 14, 12).narrow(1, 2 + 20, 18), at::full({12, 18, 3}, 40, at::kByte)));
  images.push_back(at::zeros({5, 6, 3}, at::kByte));
  EXPECT_THROW(cli::contact_sheet(images, o), Error);
}

}  // namespace
}  // namespace lit
