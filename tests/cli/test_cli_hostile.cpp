// The `lit` binary against hostile and careless files (issue 24): bombs refused under a memory cap, FIFOs
// refused without a hang, file contents printed escaped, silent wrong results turned into errors, and every
// error in the form "lit: error: <file>: <what>".
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "tests/weights/png_builder.h"
#include "tests/weights/torch_file_builder.h"
#include "weights/checkpoint.h"
#include "weights/image_io.h"
#include "weights/npy.h"
#include "weights/safetensors.h"

namespace lit {
namespace {

using test::fixture;
using test::run_command;
using test::temp_path;

const std::string kLit = LIT_CLI_PATH;

// The lit process may map at most this much address space: LibTorch's own start-up needs well under it, and
// every bomb below would need several times more.
const std::string kMemoryCap = "prlimit --as=6000000000 ";

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string tiny_png_claiming(uint32_t width, uint32_t height) {
  return test::png_signature() + test::png_ihdr(width, height) +
         test::png_chunk("IDAT", std::string("\x78\x9c\x03\x00\x00\x00\x00\x01", 8)) + test::png_chunk("IEND", "");
}

TEST(CliHostile, PixelBombIsRefusedUnderAMemoryCap) {
  const std::string bomb = temp_path("bomb.png");
  write_bytes(bomb, tiny_png_claiming(100000, 100000));  // would ask for 30 GB
  auto r = run_command(kMemoryCap + kLit + " inspect " + bomb);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output, "lit: error: " + bomb +
                          ": PNG image of 100000 x 100000 pixels exceeds the limit of 67108864 pixels (raise it with "
                          "--max-image-pixels or LIT_MAX_IMAGE_PIXELS)\n");
  // Raised by the flag or the environment: the header passes, and the missing pixel data is the error.
  r = run_command(kMemoryCap + kLit + " --max-image-pixels 10000000000 inspect " + bomb);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.find("exceeds the limit"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.rfind("lit: error: " + bomb + ": ", 0), 0u) << r.output;
  r = run_command("LIT_MAX_IMAGE_PIXELS=100 " + kLit + " inspect " + bomb);
  EXPECT_NE(r.output.find("exceeds the limit of 100 pixels"), std::string::npos) << r.output;
  r = run_command(kLit + " --max-image-pixels -5 inspect " + bomb);
  EXPECT_NE(r.output.find("--max-image-pixels: '-5' is not a non-negative integer"), std::string::npos) << r.output;
}

TEST(CliHostile, ZipStorageBombIsRefusedUnderAMemoryCap) {
  // A .pt whose 4-element storage inflates to 64 MiB (the same to the reader as 2 GiB: the size is compared
  // before anything is inflated).
  const std::string path = temp_path("bomb.pt");
  const std::string bomb(64u << 20, '\0');
  {
    ZipWriter zip(path);
    const std::string pickle = test::state_dict_pickle("w", "0", 4, {4}, {1});
    zip.add("archive/data.pkl", {{pickle.data(), pickle.size()}}, false);
    zip.add("archive/data/0", {{bomb.data(), bomb.size()}}, /*compress=*/true);
    zip.commit();
  }
  for (const std::string command : {"inspect", "convert"}) {
    const auto r = run_command(kMemoryCap + kLit + " " + command + " " + path +
                               (command == "convert" ? " " + temp_path("out.safetensors") : ""));
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(r.output, "lit: error: " + path +
                            ": storage '0' of tensor 'w' holds 67108864 bytes in the file, its pickle declares 4 x 4 "
                            "bytes\n")
        << command;
  }
}

TEST(CliHostile, FifoIsRefusedWithoutAHang) {
  const std::string fifo = temp_path("fifo.safetensors");
  ::unlink(fifo.c_str());
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const std::string vae_encode =
      "vae encode --vae " + fixture("vae/tiny_sd_vae") + " -o " + temp_path("latents.safetensors") + " ";
  for (const std::string& command : {std::string("inspect "), vae_encode}) {
    const auto r = run_command("timeout 60 " + kLit + " " + command + fifo);
    EXPECT_NE(r.exit_code, 124) << command << " hung on a FIFO";
    EXPECT_NE(r.output.find("lit: error: " + fifo + ": not a regular file (it is a FIFO)"), std::string::npos)
        << command << ": " << r.output;
  }
  ::unlink(fifo.c_str());
}

bool has_escape_byte(const std::string& s) {
  return s.find('\x1b') != std::string::npos || s.find('\x07') != std::string::npos;
}

TEST(CliHostile, InspectPrintsFileContentsEscaped) {
  const std::string ckpt = temp_path("evil.safetensors");
  write_safetensors(ckpt, {{"w\x1b[2J\x1b[H", at::ones({2})}, {"b\nforged: line", at::zeros({1})}},
                    {{"note\x1b]0;pwned\x07", "clear\x1b[2Jme"}});
  auto r = run_command(kLit + " inspect " + ckpt);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(has_escape_byte(r.output)) << r.output;
  EXPECT_NE(r.output.find("w\\x1b[2J\\x1b[H"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("b\\nforged: line"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("metadata    note\\x1b]0;pwned\\x07 = clear\\x1b[2Jme"), std::string::npos) << r.output;

  const std::string png = temp_path("evil.png");
  write_image(png, at::zeros({2, 2, 3}, at::kByte),
              {{{"parameters", "a cat\x1b[31m\nSteps: 5, Seed: 1\x1b]0;x\x07"}, {"comment", "\x1b[2J"}}});
  r = run_command(kLit + " inspect " + png);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_FALSE(has_escape_byte(r.output)) << r.output;
  EXPECT_NE(r.output.find("text        comment = \\x1b[2J"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("a cat\\x1b[31m\nSteps: 5, Seed: 1\\x1b]0;x\\x07"), std::string::npos) << r.output;
}

TEST(CliHostile, ErrorsQuotingFileContentsAreEscaped) {
  // A tensor name with escape codes in an error message (an unsupported dtype): escaped there too.
  const std::string path = temp_path("evil_error.safetensors");
  const std::string header = R"({"x\u001b[2J":{"dtype":"Q8","shape":[1],"data_offsets":[0,1]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  write_bytes(path, bytes + header + "x");
  const auto r = run_command(kLit + " inspect " + path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(has_escape_byte(r.output)) << r.output;
  EXPECT_EQ(r.output, "lit: error: " + path + ": tensor 'x\\x1b[2J': unsupported dtype 'Q8'\n");
}

TEST(CliHostile, ShiftedSafetensorsDataIsAnError) {
  const std::string path = temp_path("shifted.safetensors");
  const std::string header = R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[64,80]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  write_bytes(path, bytes + header + std::string(80, '\0'));
  const auto r = run_command(kLit + " inspect " + path);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.output, "lit: error: " + path +
                          ": tensor 'w' starts at byte 64 of the data section, leaving a gap of 64 bytes (data and "
                          "header disagree)\n");
}

TEST(CliHostile, NanWeightsAreRefusedNamingTheTensor) {
  LoadedCheckpoint ckpt = load_checkpoint(fixture("dit/dit_tiny.pt"));
  StateDict broken;
  for (const auto& [name, t] : ckpt.tensors) {
    at::Tensor copy = t.clone();
    if (name == "final_layer.linear.weight") copy.view(-1)[3] = NAN;
    broken.insert(name, copy);
  }
  std::ifstream config_in(fixture("dit/config.json"));
  const std::string config((std::istreambuf_iterator<char>(config_in)), {});
  const std::string path = temp_path("nan.safetensors");
  save_checkpoint(path, broken, config);
  const std::string out = temp_path("nan_out");
  std::filesystem::remove_all(out);
  auto r =
      run_command(kLit + " generate -q --model " + path + " -o " + out + " -n 1 --steps 2 --random-classes --seed 3");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("lit: error: " + path + ": tensor 'final_layer.linear.weight' holds 1 NaN and 0 infinite"),
            std::string::npos)
      << r.output;
  r = run_command(kLit + " --allow-non-finite-weights generate -q --model " + path + " -o " + out +
                  " -n 1 --steps 2 --random-classes --seed 3");
  EXPECT_EQ(r.output.find("holds 1 NaN"), std::string::npos) << "the opt-out loads them: " << r.output;
}

TEST(CliHostile, FidStatisticsAreValidated) {
  const std::string good = fixture("fid/stats_a.npz");
  const auto arrays = read_npz(good);
  at::Tensor mu, sigma;
  for (const auto& [name, t] : arrays) (name == "mu" ? mu : sigma) = t;
  const std::string nan_stats = temp_path("nan.npz");
  at::Tensor bad_mu = mu.clone();
  bad_mu[0] = NAN;
  write_npz(nan_stats, {{"mu", bad_mu}, {"sigma", sigma}});
  auto r = run_command(kLit + " fid " + good + " " + nan_stats);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output, "lit: error: " + nan_stats + ": mu holds NaN or infinite values\n");

  const std::string not_psd = temp_path("not_psd.npz");
  write_npz(not_psd, {{"mu", mu}, {"sigma", -sigma}});
  r = run_command(kLit + " fid " + good + " " + not_psd);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("lit: error: " + not_psd + ": sigma is not positive semi-definite", 0), 0u) << r.output;

  const std::string asym = temp_path("asymmetric.npz");
  at::Tensor skew = sigma.clone();
  skew[0][1] += 1.0;
  write_npz(asym, {{"mu", mu}, {"sigma", skew}});
  r = run_command(kLit + " fid " + good + " " + asym);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.rfind("lit: error: " + asym + ": sigma is not symmetric", 0), 0u) << r.output;
}

// The generation run's silent cases (issue 24): numbers out of range, outputs naming an input, two runs in one
// folder, and a damaged image kept by --resume.
TEST(CliHostile, GenerateRunRefusesOrRepairsWhatUsedToPassSilently) {
  const std::string base = kLit + " generate -q --sampler ddim --steps 2 -n 2 --class 1 ";
  for (const char* bad : {"--seed -1", "--seed 18446744073709551616", "--eta 1e9", "--cfg-scale 1e300"}) {
    const auto r = run_command(base + bad + " -o " + temp_path("gen-bad"));
    EXPECT_EQ(r.exit_code, 1) << bad << ": " << r.output;
    EXPECT_EQ(r.output.rfind("lit: error: ", 0), 0u) << bad << ": " << r.output;
  }
  // --grid naming the model: refused before sampling, the model untouched.
  const std::string model = temp_path("gen-model.safetensors");
  std::filesystem::copy_file(fixture("../../model/builtin/lit-fmnist.safetensors"), model,
                             std::filesystem::copy_options::overwrite_existing);
  const auto size_before = std::filesystem::file_size(model);
  auto r = run_command(base + "--model " + model + " --grid " + model + " -o " + temp_path("gen-clobber"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--grid"), std::string::npos) << r.output;
  EXPECT_EQ(std::filesystem::file_size(model), size_before);
  // A second run while the folder is locked (flock holds the run's lock as another lit run would).
  const std::string dir = temp_path("gen-locked");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  r = run_command("flock -n " + dir + "/.lit-run.lock sleep 3 & sleep 0.5; " + base + "-o " + dir);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("another lit run"), std::string::npos) << r.output;
  // --resume redoes a truncated image and gives back the straight run's bytes.
  const std::string run = temp_path("gen-resume");
  std::filesystem::remove_all(run);
  r = run_command(base + "-o " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(run + "/000001.png", std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_bytes(run + "/000001.png", good.substr(0, good.size() / 2));
  r = run_command(base + "--resume -o " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ifstream again(run + "/000001.png", std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(again)), std::istreambuf_iterator<char>()), good);
}

}  // namespace
}  // namespace lit
