// Image files (weights/image_io.h): PNG pixels and text chunks round trip, other readers agree, writes are
// atomic, and the float <-> uint8 conversions use DiT's rounding.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "tests/test_util.h"
#include "common/error.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"

namespace lit {
namespace {

using test::run_command;
using test::temp_path;

at::Tensor random_pixels(int64_t h, int64_t w) {
  return at::randint(0, 256, {h, w, 3}, at::kLong).to(at::kByte);
}

bool have(const std::string& program) {
  return run_command("command -v " + program).exit_code == 0;
}

TEST(ImageIo, PngRoundTripKeepsPixelsAndText) {
  const std::string path = temp_path("rt.png");
  const at::Tensor pixels = random_pixels(37, 53);
  ImageWriteOptions options;
  options.text = {
      {"parameters", "class 3\nSteps: 50, Seed: 7, Size: 53x37"}, {"Comment", "déjà vu"}, {"Title", "黒猫"}};
  write_image(path, pixels, options);
  EXPECT_TRUE(looks_like_png(path));
  EXPECT_TRUE(at::equal(read_image(path), pixels));
  const PngInfo info = read_png_info(path);
  EXPECT_EQ(info.width, 53);
  EXPECT_EQ(info.height, 37);
  EXPECT_EQ(info.color_type, "RGB");
  EXPECT_EQ(info.text, options.text);  // Latin-1 as tEXt, the rest as iTXt: both read back as UTF-8
}

TEST(ImageIo, GrayscaleIsWrittenAndReadAsRgb) {
  const std::string path = temp_path("gray.png");
  const at::Tensor gray = at::arange(0, 64, at::kLong).to(at::kByte).reshape({8, 8, 1});
  write_image(path, gray);
  EXPECT_EQ(read_png_info(path).color_type, "gray");
  EXPECT_TRUE(at::equal(read_image(path), gray.expand({8, 8, 3})));
}

TEST(ImageIo, ImageMagickReadsTheParameters) {
  if (!have("identify")) GTEST_SKIP() << "ImageMagick's identify is not installed (tools/install-deps.sh installs it)";
  const std::string path = temp_path("im.png");
  write_image(path, random_pixels(16, 24), {{{"parameters", "a corgi\nSteps: 20, Sampler: DDIM, Seed: 5"}}});
  const auto r = run_command("identify -verbose " + path);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("Geometry: 24x16"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("parameters: a corgi"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Steps: 20, Sampler: DDIM, Seed: 5"), std::string::npos) << r.output;
}

TEST(ImageIo, ReadsPngsOfEveryColourType) {
  if (!have("convert")) GTEST_SKIP() << "ImageMagick's convert is not installed";
  const at::Tensor pixels = random_pixels(12, 10);
  const std::string src = temp_path("src.png");
  write_image(src, pixels);
  // 16-bit RGBA, palette and gray+alpha versions of the same image, written by another encoder.
  for (const char* variant : {"PNG64", "PNG8", "PNG48"}) {
    const std::string out = temp_path(std::string(variant) + ".png");
    const auto r =
        run_command("convert " + src + (std::string(variant) == "PNG64" ? " -alpha on " : " ") + variant + ":" + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const at::Tensor back = read_image(out);
    ASSERT_EQ(back.sizes(), pixels.sizes()) << variant;
    if (std::string(variant) != "PNG8") {  // a palette of 256 colours is lossy
      EXPECT_TRUE(at::equal(back, pixels)) << variant;
    }
  }
}

TEST(ImageIo, JpegAndWebpThroughOpenCvWhenBuilt) {
  if (!can_write_image_format("x.jpg")) GTEST_SKIP() << image_codecs_summary();
  // A smooth image so that lossy compression stays close.
  const at::Tensor ramp = (at::arange(0, 64, at::kFloat) * 4).to(at::kByte);
  const at::Tensor pixels = at::stack({ramp.unsqueeze(1).expand({64, 64}), ramp.unsqueeze(0).expand({64, 64}),
                                       at::full({64, 64}, 128, at::kByte)},
                                      2)
                                .contiguous();
  for (const char* ext : {".jpg", ".webp"}) {
    const std::string path = temp_path(std::string("img") + ext);
    write_image(path, pixels);
    EXPECT_FALSE(looks_like_png(path));
    const at::Tensor back = read_image(path);
    ASSERT_EQ(back.sizes(), pixels.sizes()) << ext;
    EXPECT_LT((back.to(at::kFloat) - pixels.to(at::kFloat)).abs().mean().item<double>(), 3.0) << ext;
  }
}

TEST(ImageIo, FailedWriteLeavesNothingBehind) {
  const std::string dir = temp_path("atomic");
  ::mkdir(dir.c_str(), 0755);
  EXPECT_THROW(write_image(dir + "/bad.png", at::zeros({4, 4}, at::kByte)), Error);  // not (H, W, C)
  EXPECT_THROW(write_image(dir + "/x.tiff", random_pixels(4, 4)), Error);
  EXPECT_THROW(write_image(dir + "/missing/x.png", random_pixels(4, 4)), Error);
  ImageWriteOptions bad_key;
  bad_key.text = {{"", "empty keyword"}};
  EXPECT_THROW(write_image(dir + "/key.png", random_pixels(4, 4), bad_key), Error);
  const auto r = run_command("ls -A " + dir);
  EXPECT_EQ(r.output, "") << "left behind: " << r.output;
}

TEST(ImageIo, ReadErrorsNameTheFile) {
  const std::string path = temp_path("truncated.png");
  write_image(path, random_pixels(32, 32));
  ASSERT_EQ(::truncate(path.c_str(), 60), 0);
  try {
    read_image(path);
    FAIL() << "a truncated PNG must not read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_image(temp_path("nothing.png")), Error);
}

TEST(ImageIo, FloatConversionsUseDitRounding) {
  const at::Tensor x = at::tensor({-1.5f, -1.0f, -0.00392f, 0.0f, 0.5f, 1.0f, 2.0f}).view({1, 1, 1, 7});
  const at::Tensor u = images_to_uint8(x);
  // clamp(127.5 x + 128, 0, 255) truncated, as DiT's sample_ddp.py writes its FID samples.
  const std::vector<int> expected = {0, 0, 127, 128, 191, 255, 255};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(u[0][0][i][0].item<int>(), expected[static_cast<size_t>(i)]) << i;
  const at::Tensor pixels = random_pixels(5, 6);
  const at::Tensor f = images_from_uint8(pixels);
  EXPECT_EQ(f.sizes(), (std::vector<int64_t>{1, 3, 5, 6}));
  EXPECT_TRUE(at::equal(images_to_uint8(f)[0], pixels));
}

}  // namespace
}  // namespace lit
