// `lit generate` end to end, as a user runs it: files written, reproducibility, resume, and every error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "model/backbone/dit.h"
#include "model/backbone/model_io.h"
#include "tests/test_util.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"
#include "weights/latent_file.h"
#include "weights/npy.h"
#include "weights/safetensors.h"

namespace fs = std::filesystem;

namespace lit {
namespace {

using test::fixture;
using test::rel_error;
using test::run_command;
using test::temp_path;

const std::string kLit = LIT_CLI_PATH;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

using test::fresh_temp_dir;
// A tiny pixel-space model (1 channel, 8x8, 10 classes), random weights, saved with its config.
std::string pixel_model() {
  const std::string path = temp_path("pixel.safetensors");
  ModelConfig c = ModelConfig::from_json(
      R"({"input_size":8,"patch_size":2,"in_channels":1,"hidden_size":32,"depth":2,"num_heads":2,"mlp_ratio":2.0,
          "class_dropout_prob":0.1,"num_classes":10,"learn_sigma":true,"attention":"linear","dwc_kernel":5})");
  at::manual_seed(7);
  DiT model(c);
  {
    const at::NoGradGuard no_grad;
    for (auto& p : model->parameters()) p.add_(at::randn_like(p) * 0.05);
  }
  save_model(path, model);
  return path;
}

const std::string kTinyDiT = fixture("dit/dit_tiny.pt");
const std::string kTinyVae = fixture("vae/tiny_sd_vae");

std::string generate(const std::string& args) {
  return kLit + " generate -q --model " + kTinyDiT + " " + args;
}

TEST(CliGenerate, InitNoiseDdim25ReproducesTheReferenceSample) {
  const auto ref = SafetensorsFile::open(fixture("diffusion/sampling.safetensors"));
  const std::string noise = temp_path("z.safetensors");
  write_latents(noise, ref.tensor("z"));
  const auto labels = ref.tensor("ddim25.labels");
  const std::string out = temp_path("ddim25_latents.safetensors");
  const std::string dir = fresh_temp_dir("ddim25");
  const auto r = run_command(generate("-o " + dir + " -n 2 --sampler ddim --steps 25 --cfg-scale 1 --class " +
                                      std::to_string(labels[0].item<int64_t>()) + " --class " +
                                      std::to_string(labels[1].item<int64_t>()) + " --init-noise " + noise +
                                      " --save-latents " + out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_LE(rel_error(read_latents(out), ref.tensor("ddim25.sample")), 1e-5);
  EXPECT_FALSE(fs::exists(dir + "/000000.png")) << "a latent model without VAE writes latents only";
}

TEST(CliGenerate, LatentModelWithVaeWritesEveryOutput) {
  const std::string dir = fresh_temp_dir("vae_run");
  const std::string grid = temp_path("grid.png"), npz = temp_path("samples.npz"), lat = temp_path("lat.safetensors");
  const auto r = run_command(generate("--vae " + kTinyVae + " -o " + dir +
                                      " -n 3 --batch-size 2 --sampler ddim --steps 5 --cfg-scale 2 --class 4 --seed 11 "
                                      "--grid " +
                                      grid + " --npz " + npz + " --save-latents " + lat));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 3; ++i) {
    const std::string png = dir + "/00000" + std::to_string(i) + ".png";
    ASSERT_TRUE(fs::exists(png)) << png;
    const at::Tensor img = read_image(png);
    EXPECT_EQ(img.sizes(), (std::vector<int64_t>{64, 64, 3}));  // 8 latent pixels x 8
    const GenerationParams p = parse_generation_params(find_parameters_text(read_png_info(png).text).value_or(""));
    EXPECT_EQ(p.get("Seed").value_or(""), std::to_string(11 + i));
    EXPECT_EQ(p.get("Steps").value_or(""), "5");
    EXPECT_EQ(p.get("Sampler").value_or(""), "ddim");
    EXPECT_EQ(p.get("CFG scale").value_or(""), "2");
    EXPECT_EQ(p.get("Class").value_or(""), "4");
    EXPECT_EQ(p.get("Size").value_or(""), "64x64");
    EXPECT_EQ(p.get("VAE").value_or(""), "tiny_sd_vae");
  }
  EXPECT_TRUE(fs::exists(dir + "/run.json"));
  const auto arrays = read_npz(npz);
  ASSERT_EQ(arrays.size(), 2u);  // arr_0 the images, arr_1 their class labels (guided-diffusion's convention)
  EXPECT_EQ(arrays[0].first, "arr_0");
  EXPECT_EQ(arrays[0].second.sizes(), (std::vector<int64_t>{3, 64, 64, 3}));
  EXPECT_EQ(arrays[0].second.scalar_type(), at::kByte);
  EXPECT_TRUE(at::equal(arrays[0].second[2], read_image(dir + "/000002.png")));
  EXPECT_EQ(arrays[1].first, "arr_1");
  EXPECT_EQ(arrays[1].second.scalar_type(), at::kLong);
  EXPECT_TRUE(at::equal(arrays[1].second, at::full({3}, 4, at::kLong)));
  EXPECT_EQ(read_latents(lat).sizes(), (std::vector<int64_t>{3, 4, 8, 8}));
  const at::Tensor sheet = read_image(grid);
  EXPECT_EQ(sheet.size(0), 2 * (64 + 2) + 2);  // 2 x 2 sheet with 2-pixel borders
}

TEST(CliGenerate, PixelModelWritesGrayImages) {
  const std::string model = pixel_model();
  const std::string dir = fresh_temp_dir("pixel");
  const auto r =
      run_command(kLit + " generate -q --model " + model + " -o " + dir + " -n 2 --steps 10 --random-classes --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const PngInfo info = read_png_info(dir + "/000001.png");
  EXPECT_EQ(info.width, 8);
  EXPECT_EQ(info.color_type, "gray");
}

TEST(CliGenerate, SameSeedSameFilesWhateverTheBatchSize) {
  const std::string a = fresh_temp_dir("seed_a"), b = fresh_temp_dir("seed_b");
  const std::string common =
      "--vae " + kTinyVae + " -n 4 --sampler ddpm --steps 6 --cfg-scale 3 --random-classes --seed 5";
  ASSERT_EQ(run_command(generate(common + " --batch-size 4 -o " + a)).exit_code, 0);
  ASSERT_EQ(run_command(generate(common + " --batch-size 1 -o " + b)).exit_code, 0);
  for (int i = 0; i < 4; ++i) {
    const std::string name = "/00000" + std::to_string(i) + ".png";
    // Batched matrix products may round differently from single ones; pixels may differ by a unit at most.
    const at::Tensor pa = read_image(a + name).to(at::kInt), pb = read_image(b + name).to(at::kInt);
    EXPECT_LE((pa - pb).abs().max().item<int>(), 1) << name;
  }
  const std::string c = fresh_temp_dir("seed_c");
  ASSERT_EQ(run_command(generate(common + " --batch-size 4 -o " + c)).exit_code, 0);
  for (int i = 0; i < 4; ++i) {
    const std::string name = "/00000" + std::to_string(i) + ".png";
    EXPECT_EQ(read_file(a + name), read_file(c + name)) << "same command, same bytes: " << name;
  }
}

TEST(CliGenerate, ResumeFinishesAnInterruptedRunIdentically) {
  const std::string full = fresh_temp_dir("resume_full"), part = fresh_temp_dir("resume_part");
  const std::string common = "--vae " + kTinyVae + " -n 5 --batch-size 2 --sampler ddim --steps 4 --class 1 --class 2";
  ASSERT_EQ(run_command(generate(common + " -o " + full)).exit_code, 0);
  ASSERT_EQ(run_command(generate(common + " -o " + part)).exit_code, 0);
  // What a kill leaves: some images missing and a stray temporary file.
  fs::remove(part + "/000001.png");
  fs::remove(part + "/000004.png");
  std::ofstream(part + "/000004.png.tmp-99999") << "half";
  const auto again = run_command(generate(common + " -o " + part));
  EXPECT_NE(again.exit_code, 0) << "a second run into the same folder needs --resume";
  EXPECT_NE(again.output.find("--resume"), std::string::npos) << again.output;
  const auto r = run_command(generate(common + " --resume -o " + part));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 5; ++i) {
    const std::string name = "/00000" + std::to_string(i) + ".png";
    EXPECT_EQ(read_file(full + name), read_file(part + name)) << name;
  }
  const auto changed = run_command(generate("--vae " + kTinyVae +
                                            " -n 5 --batch-size 2 --sampler ddim --steps 8 --class 1 --class 2 "
                                            "--resume -o " +
                                            part));
  EXPECT_NE(changed.exit_code, 0);
  EXPECT_NE(changed.output.find("steps"), std::string::npos) << changed.output;
}

TEST(CliGenerate, KilledRunResumesToTheSameSet) {
  const std::string full = fresh_temp_dir("kill_full"), part = fresh_temp_dir("kill_part");
  const std::string common = "--vae " + kTinyVae + " -n 6 --batch-size 1 --sampler ddpm --steps 40 --class 3";
  ASSERT_EQ(run_command(generate(common + " -o " + full)).exit_code, 0);
  // Start, kill -9 as soon as the first image exists (or when it has finished), then resume.
  run_command("( " + generate(common + " -o " + part) + " & pid=$!; for i in $(seq 1 600); do [ -e " + part +
              "/000000.png ] && break; sleep 0.01; done; kill -9 $pid; wait $pid ) 2>/dev/null");
  const auto r = run_command(generate(common + " --resume -o " + part));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (int i = 0; i < 6; ++i) {
    const std::string name = "/00000" + std::to_string(i) + ".png";
    EXPECT_EQ(read_file(full + name), read_file(part + name)) << name;
  }
}

struct BadInput {
  std::string args;
  std::string message;
};

TEST(CliGenerate, EveryBadInputIsOneClearLine) {
  const std::string dir = fresh_temp_dir("errors");
  const std::string corrupt = temp_path("corrupt.pt");
  {
    const std::string bytes = read_file(kTinyDiT);
    std::ofstream(corrupt, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  const std::string not_a_dir = temp_path("plain_file");
  std::ofstream(not_a_dir) << "x";
  const std::string pixel = pixel_model();
  const std::string wrong_noise = temp_path("wrong_noise.safetensors");
  write_latents(wrong_noise, at::randn({1, 4, 8, 8}));
  const std::string m = " --model " + kTinyDiT + " --vae " + kTinyVae + " -o " + dir;
  const std::vector<BadInput> cases = {
      {"--model /no/such.pt -o " + dir, "/no/such.pt"},
      {"--model " + corrupt + " -o " + dir, corrupt},
      {m + " --class golden_retriever", "unknown class name 'golden_retriever'"},
      {m + " --class 10", "out of range"},
      {m + " --class -1", "out of range"},
      {m + " --size 256", "does not match the model"},
      {"--model " + pixel + " --vae " + kTinyVae + " -o " + dir, "latent channels"},
      {"--model " + kTinyDiT + " -o " + dir, "--vae"},
      {"--model " + kTinyDiT + " --vae " + kTinyVae + " -o " + not_a_dir + "/sub", "cannot create output folder"},
      {m + " -n 0", "at least 1"},
      {m + " --batch-size 0", "at least 1"},
      {m + " --steps 0", "steps"},
      {m + " --steps 5000", "steps"},
      {m + " --cfg-scale -2", "--cfg-scale"},
      {m + " --sampler euler", "euler"},
      {m + " --dtype fp8", "--dtype"},
      {m + " --device tpu", "--device"},
      {m + " --init-noise " + fixture("dit/dit_tiny_io.safetensors"), "--init-noise"},
      {m + " -n 2 --init-noise " + wrong_noise, "the run needs [2, 4, 8, 8]"},
      {m + " --output " + dir + " -o " + dir, "--output"},
      {m + " --class 1 --random-classes", "exclude each other"},
      {m + " --resume", "no run to resume"},
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
