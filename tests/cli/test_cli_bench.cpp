// `lit bench forward` and `lit bench generate` as a user runs them: a table row per preset, one-line errors. No timing
// is asserted (benchmarks measure, tests check behaviour).
#include <gtest/gtest.h>

#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "model/backbone/builtin_model.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::run_command;

const std::string kLit = LIT_CLI_PATH;
const std::string kSmall = " --image-size 256 --batch-size 1 --repeats 2 --warmup 1 --device cpu --dtype fp32";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(CliBenchForward, PrintsHeaderAndOneRowPerPreset) {
  const auto r = run_command(kLit + " bench forward --preset DiT-S/8 --preset LiT-S/8" + kSmall);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "lit bench forward:")) << r.output;
  EXPECT_TRUE(contains(r.output, "floor: fp32 1024^3 matrix multiply")) << r.output;
  EXPECT_TRUE(contains(r.output, "ms/batch")) << r.output;
  EXPECT_TRUE(contains(r.output, "of_floor")) << r.output;
  // 256 px -> 32x32 latents, patch 8 -> 16 tokens, batch 1; no row failed.
  for (const char* preset : {"DiT-S/8", "LiT-S/8"}) {
    const size_t row = r.output.find(std::string("\n") + preset + " ");
    ASSERT_NE(row, std::string::npos) << preset << " row missing:\n" << r.output;
    std::istringstream line(r.output.substr(row + 1, r.output.find('\n', row + 1) - row - 1));
    std::vector<std::string> fields;
    for (std::string f; line >> f;) fields.push_back(f);
    ASSERT_EQ(fields.size(), 10u) << line.str();  // preset px tokens batch ms/batch ms/image TFLOP/s ... peak
    EXPECT_EQ(fields[1], "256") << line.str();
    EXPECT_EQ(fields[2], "16") << line.str();
    EXPECT_EQ(fields[3], "1") << line.str();
    EXPECT_EQ(fields[8].back(), 'x') << "vs_first: " << line.str();
    EXPECT_EQ(fields[9], "-") << "no peak memory on the CPU: " << line.str();
  }
}

TEST(CliBenchForward, Runs1024PixelImages) {
  // 1024 px -> 128x128 latents (image size / 8), patch 8 -> 16x16 = 256 tokens.
  const auto r = run_command(kLit +
                             " bench forward --preset DiT-S/8 --image-size 1024 --batch-size 1 --repeats 1 --warmup 0 "
                             "--device cpu --dtype fp32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "\nDiT-S/8" + std::string(13, ' ') + "  1024     256      1 ")) << r.output;
  EXPECT_FALSE(contains(r.output, "error")) << r.output;
}

// `lit bench generate --vae DIR`: the end-to-end row (sampling, then decoding and 8-bit images) with its
// decode_s column; a VAE whose latent channels do not fit the model is one line and a non-zero exit.
TEST(CliBenchGenerate, DecodesEachBatchWithTheVae) {
  const std::string vae = std::string(LIT_FIXTURES_DIR) + "/vae/tiny_sd_vae";
  const auto r = run_command(kLit + " bench generate --preset LiT-S/8 --image-size 64 --batch-size 2 --steps 2 " +
                             "--repeats 1 --vae " + vae);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "decode_s")) << r.output;
  EXPECT_TRUE(contains(r.output, "end to end")) << r.output;
  const size_t row = r.output.find("\nfp32 ");
  ASSERT_NE(row, std::string::npos) << r.output;
  std::istringstream line(r.output.substr(row + 1, r.output.find('\n', row + 1) - row - 1));
  std::vector<std::string> fields;
  for (std::string f; line >> f;) fields.push_back(f);
  ASSERT_EQ(fields.size(), 8u) << line.str();  // dtype s/batch images/s evals/s TFLOP/s of_matmul vs_first decode_s
  EXPECT_LT(std::stod(fields[7]), std::stod(fields[1])) << "decoding is part of the batch's time: " << line.str();

  const std::optional<std::string> pixel_model = find_builtin_model();  // 1 channel: pixels, no VAE
  ASSERT_TRUE(pixel_model.has_value());
  const auto bad = run_command(kLit + " bench generate --model " + *pixel_model + " --steps 1 --repeats 1 --decode");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(contains(bad.output, "latent channels")) << bad.output;
}

// Several --attention values: one row per implementation for the linear-attention preset, labelled; the
// softmax preset runs once. An unknown implementation is refused before anything runs.
TEST(CliBenchForward, OneRowPerAttentionImplementation) {
  const auto r = run_command(kLit + " bench forward --preset DiT-S/8 --preset LiT-S/8 --attention composed " +
                             "--attention reference" + kSmall);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(contains(r.output, "\nDiT-S/8 ")) << r.output;
  EXPECT_FALSE(contains(r.output, "DiT-S/8:")) << r.output;
  EXPECT_TRUE(contains(r.output, "\nLiT-S/8:composed ")) << r.output;
  EXPECT_TRUE(contains(r.output, "\nLiT-S/8:reference ")) << r.output;
  EXPECT_FALSE(contains(r.output, "error")) << r.output;

  const auto bad = run_command(kLit + " bench forward --preset LiT-S/8 --attention fastest" + kSmall);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_TRUE(contains(bad.output, "fastest")) << bad.output;
}

TEST(CliBenchForward, UnknownPresetIsOneLineAndNonZero) {
  const auto r = run_command(kLit + " bench forward --preset DiT-Q/3" + kSmall);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "DiT-Q/3")) << r.output;
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "expected exactly one line: " << r.output;
}

TEST(CliBenchForward, GpuSizedDefaultsAreRefusedOnTheCpu) {
  const auto r = run_command(kLit + " bench forward --device cpu");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "--preset")) << r.output;
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "expected exactly one line: " << r.output;
}

TEST(CliBenchForward, BatchSizesMustMatchImageSizes) {
  const auto r = run_command(kLit +
                             " bench forward --preset DiT-S/8 --image-size 256 --image-size 512 --batch-size 1 "
                             "--batch-size 2 --batch-size 3 --device cpu --dtype fp32");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(contains(r.output, "--batch-size")) << r.output;
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "expected exactly one line: " << r.output;
}

}  // namespace
}  // namespace lit
