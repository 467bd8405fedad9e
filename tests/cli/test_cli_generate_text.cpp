// `lit generate` with text-to-image models, as a user runs it: the fixture's end-to-end trajectory from
// --init-noise and --save-latents, the PNG parameters in the web UI's layout, --prompts-file runs (cycled,
// resumed, grid, npz), and every bad input as one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/t2i/pixart_io.h"
#include "tests/t2i/t2i_test_util.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"
#include "weights/latent_file.h"
#include "weights/npy.h"
#include "weights/zip_archive.h"

namespace fs = std::filesystem;

namespace lit {
namespace {

using test::fixture;
using test::fresh_temp_dir;
using test::max_rel;
using test::run_command;
using test::temp_path;

const std::string kLit = LIT_CLI_PATH;
const std::string kPixArt = fixture("t2i/pixart_tiny/pixart_tiny.pth");
const std::string kT5 = fixture("t2i/t5_tiny/single");
const std::string kVae = fixture("vae/tiny_sd_vae");

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Prompts 14 and 5 of the fixture, one per line.
std::string e2e_prompts_file() {
  return write_file(temp_path("e2e_prompts.txt"),
                    "pixel art of a tiny robot holding a sign that says \"hello world\"\nA Red CUBE On A Blue TABLE\n");
}

std::string text_generate(const std::string& model, const std::string& args) {
  return kLit + " generate -q --model " + model + " --text-encoder " + kT5 + " " + args;
}

TEST(CliGenerateText, InitNoiseAndSaveLatentsReproduceTheReferenceTrajectory) {
  const auto e2e = [](const std::string& name) { return test::t2i_tensor("e2e/e2e_tiny.safetensors", name); };
  const std::string noise = temp_path("t2i_e2e_noise.safetensors");
  write_latents(noise, e2e("noise"));
  const std::string lit_config = write_file(temp_path("cli_lit_t2i_tiny.json"), test::tiny_lit_config().to_json(2));
  struct Case {
    std::string model, extra, reference;
  };
  for (const Case& c :
       {Case{kPixArt, "", "pixart_final_latent"},
        Case{fixture("t2i/lit_t2i_tiny/lit_t2i_tiny.safetensors"), " --config " + lit_config, "lit_final_latent"}}) {
    const std::string dir = fresh_temp_dir("t2i_e2e_" + c.reference);
    const std::string out = temp_path("t2i_e2e_" + c.reference + ".safetensors");
    const auto r =
        run_command(text_generate(c.model, "--prompts-file " + e2e_prompts_file() + " --steps 10 --init-noise " +
                                               noise + " --save-latents " + out + " -o " + dir + c.extra));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_LE(max_rel(read_latents(out), e2e(c.reference)), 1e-5) << c.reference;
  }
}

TEST(CliGenerateText, PngParametersInTheWebUiLayoutWithPixArtDefaults) {
  const std::string dir = fresh_temp_dir("t2i_params");
  const auto r = run_command(text_generate(kPixArt, "--vae " + kVae +
                                                        " --prompt 'a red cube' --negative-prompt 'blurry, dark' "
                                                        "-n 2 --seed 9 -o " +
                                                        dir));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto text = find_parameters_text(read_png_info(dir + "/000001.png").text);
  ASSERT_TRUE(text);
  EXPECT_EQ(text->rfind("a red cube\nNegative prompt: blurry, dark\nSteps: 20, Sampler: dpm++2m, CFG scale: 4.5, "
                        "Seed: 10, Size: 64x64, Model: pixart_tiny.pth, VAE: tiny_sd_vae, Text encoder: single, ",
                        0),
            0u)
      << *text;
  const GenerationParams p = parse_generation_params(*text);
  EXPECT_EQ(p.prompt, "a red cube");
  EXPECT_EQ(p.negative_prompt, "blurry, dark");
  EXPECT_EQ(read_image(dir + "/000000.png").sizes(), at::IntArrayRef({64, 64, 3}));
}

TEST(CliGenerateText, PromptsFileRunsCycleResumeAndMakeGridAndNpz) {
  const std::string prompts = write_file(temp_path("three_prompts.txt"), "a red cube\r\n\na blue ball\nred\n");
  const std::string common = "--vae " + kVae + " --prompts-file " + prompts + " --steps 3 --batch-size 2";
  // -n defaults to the prompt count.
  const std::string three = fresh_temp_dir("t2i_three");
  ASSERT_EQ(run_command(text_generate(kPixArt, common + " -o " + three)).exit_code, 0);
  EXPECT_TRUE(fs::exists(three + "/000002.png"));
  EXPECT_FALSE(fs::exists(three + "/000003.png"));

  // Cycled with -n; a resumed run equals a straight one, byte for byte.
  const std::string full = fresh_temp_dir("t2i_full"), part = fresh_temp_dir("t2i_part");
  const std::string grid = temp_path("t2i_grid.png"), npz = temp_path("t2i_samples.npz");
  ASSERT_EQ(run_command(
                text_generate(kPixArt, common + " -n 5 -o " + full + " --grid " + grid + " --grid-labels --npz " + npz))
                .exit_code,
            0);
  ASSERT_EQ(run_command(text_generate(kPixArt, common + " -n 5 -o " + part)).exit_code, 0);
  fs::remove(part + "/000001.png");
  fs::remove(part + "/000004.png");
  const auto r = run_command(text_generate(kPixArt, common + " -n 5 --resume -o " + part));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 5; ++i) {
    const std::string name = "/00000" + std::to_string(i) + ".png";
    EXPECT_EQ(read_file(full + name), read_file(part + name)) << name;
  }
  EXPECT_EQ(parse_generation_params(*find_parameters_text(read_png_info(full + "/000004.png").text)).prompt,
            "a blue ball");  // image 4 has prompt 4 mod 3
  EXPECT_EQ(read_file(three + "/000001.png"), read_file(full + "/000001.png"));
  EXPECT_TRUE(fs::exists(grid));
  const ZipReader zip(npz);
  ASSERT_EQ(zip.size(), 1u);  // arr_0 only: no class labels
  EXPECT_EQ(zip.name(0), "arr_0.npy");

  // Resuming with other prompts is refused.
  const std::string other = write_file(temp_path("other_prompts.txt"), "a green cone\n");
  const auto changed = run_command(text_generate(
      kPixArt, "--vae " + kVae + " --prompts-file " + other + " --steps 3 --batch-size 2 -n 5 --resume -o " + part));
  EXPECT_NE(changed.exit_code, 0);
  EXPECT_NE(changed.output.find("was made with prompts"), std::string::npos) << changed.output;
}

TEST(CliGenerateText, EveryBadInputIsOneClearLine) {
  const std::string dir = fresh_temp_dir("t2i_errors");
  const std::string empty = write_file(temp_path("empty_prompts.txt"), "\n  \n");
  PixArtConfig narrow = test::tiny_pixart_config();
  narrow.caption_channels = 32;
  const std::string narrow_path = temp_path("cli_pixart_caption32.safetensors");
  save_pixart(narrow_path, PixArtMS(narrow));
  const std::string m = " --model " + kPixArt + " --vae " + kVae + " -o " + dir;
  struct BadInput {
    std::string args, message;
  };
  const std::vector<BadInput> cases = {
      {m + " --prompt cube",
       kPixArt + " is a text-to-image model: give its T5 text encoder folder (--text-encoder DIR)"},
      {m + " --text-encoder " + kT5 + " --prompts-file " + empty,
       "--prompts-file " + empty + ": no prompts in it (one prompt per line)"},
      {m + " --text-encoder " + kT5 + " --prompts-file /no/such.txt", "--prompts-file /no/such.txt: cannot open"},
      {" --model " + narrow_path + " --vae " + kVae + " -o " + dir + " --text-encoder " + kT5 + " --prompt x",
       "its T5 is 64 wide (d_model), the model reads captions 32 wide (caption_channels)"},
      {" --model " + fixture("dit/dit_tiny.pt") + " --vae " + kVae + " -o " + dir + " --prompt cube",
       "is a class-conditional model, it takes classes (--class), not a prompt"},
      {m + " --text-encoder " + kT5 + " --class 3", "is a text-to-image model, it takes a prompt"},
      {m + " --text-encoder " + kT5, "no prompt: "},
      {m + " --text-encoder " + kT5 + " --prompt x --prompts-file " + empty, "exclude each other"},
      {m + " --text-encoder " + kT5 + " --negative-prompt x", "--negative-prompt needs --prompt or --prompts-file"},
      {m + " --text-encoder " + kT5 + " --prompt x --width 60", "both must be multiples of 16"},
      {m + " --text-encoder " + kT5 + " --prompt x --guidance-convention a1111", "--guidance-convention"},
  };
  for (const auto& c : cases) {
    const auto r = run_command(kLit + " generate -q " + c.args);
    EXPECT_NE(r.exit_code, 0) << c.args;
    EXPECT_NE(r.output.find(c.message), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << c.args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir + "/000000.png")) << c.args;
  }
}

}  // namespace
}  // namespace lit
