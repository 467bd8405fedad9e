// `lit vae encode|decode` and `lit inspect IMAGE.png` as a user runs them: results against diffusers'
// fixtures, one-line errors, PNG parameters read back by us and by ImageMagick, and the peak memory of
// tiled decoding measured in separate processes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tests/test_util.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"
#include "weights/latent_file.h"
#include "weights/safetensors.h"

extern char** environ;

namespace lit {
namespace {

using test::fixture;
using test::rel_error;
using test::run_command;
using test::temp_path;

const std::string kLit = LIT_CLI_PATH;
const std::string kVae = fixture("vae/tiny_sd_vae");
constexpr double kScale = 0.18215;

struct Reference {
  at::Tensor image, mean, decoded;
};

Reference reference() {
  const auto f = SafetensorsFile::open(fixture("vae/vae_io.safetensors"));
  return {f.tensor("image"), f.tensor("latent_mean"), f.tensor("decoded")};
}

bool is_one_line_error(const test::CommandResult& r) {
  return r.exit_code != 0 && r.output.rfind("lit: error: ", 0) == 0 && r.output.find('\n') == r.output.size() - 1;
}

// Peak resident memory (bytes) of a child process running `args`, from its own rusage; -1 on failure.
int64_t peak_rss_of(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  struct rusage usage {};
  if (::wait4(pid, &status, 0, &usage) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return -1;
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

TEST(CliVae, DecodeMatchesDiffusers) {
  const Reference ref = reference();
  const std::string latents = temp_path("latents.safetensors"), raw = temp_path("raw.safetensors");
  const std::string out = temp_path("out");
  write_latents(latents, ref.mean * kScale);  // the model's space, as `lit generate --save-latents` writes
  const auto r =
      run_command(kLit + " vae decode " + latents + " --vae " + kVae + " --device cpu -o " + out + " --raw " + raw);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("decoded 2 latents [2, 4, 8, 8] -> 64x64 images"), std::string::npos) << r.output;
  EXPECT_LE(rel_error(SafetensorsFile::open(raw).tensor("images"), ref.decoded), 1e-5);
  const at::Tensor expected = images_to_uint8(ref.decoded);
  for (int i = 0; i < 2; ++i) {
    const at::Tensor png = read_image(out + "/00000" + std::to_string(i) + ".png");
    EXPECT_LE((png.to(at::kInt) - expected[i].to(at::kInt)).abs().max().item<int>(), 1) << i;
  }
}

TEST(CliVae, EncodeWritesScaledLatents) {
  const Reference ref = reference();
  const at::Tensor pixels = images_to_uint8(ref.image);
  const std::string a = temp_path("a.png"), b = temp_path("b.png"), latents = temp_path("latents.safetensors");
  write_image(a, pixels[0]);
  write_image(b, pixels[1]);
  const auto r = run_command(kLit + " vae encode " + a + " " + b + " --vae " + kVae + " --device cpu -o " + latents);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("encoded 2 images of 64x64"), std::string::npos) << r.output;
  const auto file = SafetensorsFile::open(latents);
  EXPECT_EQ(file.metadata().at("scaling_factor"), "0.18215");
  EXPECT_EQ(file.metadata().at("posterior"), "mean");
  // The image went through 8 bits on its way: close to diffusers' mean, not equal.
  EXPECT_LE(rel_error(file.tensor("latents"), ref.mean * kScale), 2e-2);

  // --sample: image i from seed + i, so encoding one image alone gives the same latent.
  const std::string s2 = temp_path("s2.safetensors"), s1 = temp_path("s1.safetensors");
  ASSERT_EQ(
      run_command(kLit + " vae encode " + a + " " + b + " --vae " + kVae + " --sample --seed 5 --batch 1 -o " + s2)
          .exit_code,
      0);
  ASSERT_EQ(run_command(kLit + " vae encode " + b + " --vae " + kVae + " --sample --seed 6 -o " + s1).exit_code, 0);
  const at::Tensor both = read_latents(s2), one = read_latents(s1);
  EXPECT_TRUE(at::allclose(both[1], one[0], 1e-5, 1e-6));
  EXPECT_FALSE(at::allclose(both[1], file.tensor("latents")[1], 1e-3, 1e-4));
}

TEST(CliVae, LegacyNamesFileWithItsConfig) {
  const Reference ref = reference();
  const std::string latents = temp_path("latents.safetensors"), raw = temp_path("raw.safetensors");
  write_latents(latents, ref.mean * kScale);
  const auto r =
      run_command(kLit + " vae decode " + latents + " --vae " + fixture("vae/tiny_sd_vae_legacy_names.safetensors") +
                  " --vae-config " + kVae + "/config.json --raw " + raw);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LE(rel_error(SafetensorsFile::open(raw).tensor("images"), ref.decoded), 1e-5);
}

TEST(CliVae, TiledDecodeMatchesUntiled) {
  const std::string latents = temp_path("latents.safetensors");
  write_latents(latents, at::randn({1, 4, 24, 20}));
  const std::string whole = temp_path("whole.safetensors"), tiled = temp_path("tiled.safetensors");
  ASSERT_EQ(run_command(kLit + " vae decode " + latents + " --vae " + kVae + " --raw " + whole).exit_code, 0);
  const auto r = run_command(kLit + " vae decode " + latents + " --vae " + kVae + " --tile 10 --raw " + tiled);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LE(rel_error(SafetensorsFile::open(tiled).tensor("images"), SafetensorsFile::open(whole).tensor("images")),
            1e-4);
}

TEST(CliVae, ClearErrors) {
  const std::string latents = temp_path("latents.safetensors");
  write_latents(latents, at::zeros({1, 4, 8, 8}));
  auto r = run_command(kLit + " vae decode " + latents + " --vae /no/such/vae -o " + temp_path("o"));
  EXPECT_TRUE(is_one_line_error(r)) << r.output;
  EXPECT_NE(r.output.find("/no/such/vae: no such file or folder"), std::string::npos) << r.output;

  r = run_command(kLit + " vae decode " + latents + " --vae " + fixture("vae") + " -o " + temp_path("o"));
  EXPECT_TRUE(is_one_line_error(r)) << r.output;
  EXPECT_NE(r.output.find("no config.json"), std::string::npos) << r.output;

  const std::string wide = temp_path("wide.safetensors");
  write_latents(wide, at::zeros({1, 8, 8, 8}));
  r = run_command(kLit + " vae decode " + wide + " --vae " + kVae + " -o " + temp_path("o"));
  EXPECT_TRUE(is_one_line_error(r)) << r.output;
  EXPECT_NE(r.output.find("has 4 latent channels, but " + wide + " has 8"), std::string::npos) << r.output;

  r = run_command(kLit + " vae decode " + latents + " --vae " + kVae);
  EXPECT_TRUE(is_one_line_error(r)) << r.output;

  const std::string small = temp_path("small.png"), big = temp_path("big.png");
  write_image(small, at::zeros({64, 64, 3}, at::kByte));
  write_image(big, at::zeros({128, 64, 3}, at::kByte));
  r = run_command(kLit + " vae encode " + small + " " + big + " --vae " + kVae + " -o " + temp_path("l.safetensors"));
  EXPECT_TRUE(is_one_line_error(r)) << r.output;
  EXPECT_NE(r.output.find(big + ": 64x128 pixels, but"), std::string::npos) << r.output;
}

TEST(CliVae, InspectShowsPngParametersVerbatim) {
  GenerationParams p;
  p.prompt = "class 207";
  p.negative_prompt = "class 0";
  p.set("Steps", "250");
  p.set("Sampler", "DDPM");
  p.set("CFG scale", "4");
  p.set("Seed", "42");
  p.set("Size", "64x64");
  p.set("Model", "DiT-XL-2-256x256.pt");
  p.set("Model hash", "a4b7c1d2");
  p.set("VAE", "sd-vae-ft-ema, tiled");
  p.set("Guidance channels", "3");
  const std::string text = format_generation_params(p), path = temp_path("gen.png");
  write_image(path, at::zeros({64, 64, 3}, at::kByte), {{{kParametersKeyword, text}}});

  const auto r = run_command(kLit + " inspect " + path);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("format      PNG, 64x64, RGB, 8-bit"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("prompt      class 207\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  VAE:               sd-vae-ft-ema, tiled\n"), std::string::npos) << r.output;
  const std::string tail = "parameters:\n" + text + "\n";
  ASSERT_GE(r.output.size(), tail.size());
  EXPECT_EQ(r.output.substr(r.output.size() - tail.size()), tail) << r.output;

  // An independent reader: ImageMagick shows the same text under the same keyword.
  if (run_command("command -v identify").exit_code != 0) GTEST_SKIP() << "ImageMagick's identify is not installed";
  const auto im = run_command("identify -format '%[parameters]' " + path);
  ASSERT_EQ(im.exit_code, 0) << im.output;
  EXPECT_EQ(im.output, text);
}

TEST(CliVae, TiledDecodeKeepsPeakMemoryDown) {
  // Peak RSS of separate `lit vae decode` processes above a tiny decode's (LibTorch itself): untiled, the
  // peak grows with the image; with --memory-budget the tiles stay the same size and only the latent-
  // resolution part and the output grow. (RSS also holds the allocator's slack and the CPU kernels' scratch,
  // which the budget does not count: compare, don't expect the budget to the byte.)
  const std::string base_latents = temp_path("base.safetensors");
  write_latents(base_latents, at::randn({1, 4, 8, 8}));
  const auto run = [&](const std::string& latents, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {kLit, "vae",      "decode", latents, "--vae",
                                     kVae, "--device", "cpu",    "--raw", temp_path("raw.safetensors")};
    args.insert(args.end(), extra.begin(), extra.end());
    return peak_rss_of(args);
  };
  const int64_t base = run(base_latents, {});
  ASSERT_GT(base, 0);
  const std::vector<std::string> tiled_args = {"--memory-budget", "60", "--tile-overlap", "4", "--per-tile-norm"};
  std::printf("%-8s %-10s %13s %22s\n", "latent", "image", "untiled MiB", "budget 60 MiB: MiB");
  std::vector<double> untiled, tiled;
  for (int64_t size : {48, 96}) {
    const std::string latents = temp_path("l" + std::to_string(size) + ".safetensors");
    write_latents(latents, at::randn({1, 4, size, size}));
    untiled.push_back(static_cast<double>(run(latents, {}) - base) / (1 << 20));
    tiled.push_back(static_cast<double>(run(latents, tiled_args) - base) / (1 << 20));
    std::printf("%-8s %-10s %13.1f %22.1f\n", (std::to_string(size) + "^2").c_str(),
                (std::to_string(8 * size) + "^2").c_str(), untiled.back(), tiled.back());
  }
  EXPECT_LT(tiled[1], untiled[1] / 2);
  EXPECT_LT(tiled[1] - tiled[0], (untiled[1] - untiled[0]) / 2);
}

}  // namespace
}  // namespace lit
