// The `lit` binary as a user runs it: exit codes and one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "weights/checkpoint.h"

namespace lit {
namespace {

using test::fixture;
using test::run_command;
using test::temp_path;

const std::string kLit = LIT_CLI_PATH;

TEST(Cli, HelpListsSubcommands) {
  const auto r = run_command(kLit + " --help");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("inspect"), std::string::npos) << r.output;
}

TEST(Cli, VersionNamesLibTorch) {
  const auto r = run_command(kLit + " --version");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("LibTorch"), std::string::npos) << r.output;
}

TEST(Cli, InspectSafetensorsCheckpoint) {
  const auto r = run_command(kLit + " inspect " + fixture("dit/dit_tiny_fp16.safetensors"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("format      safetensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("F16"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("blocks.0.attn.qkv.weight"), std::string::npos) << r.output;
}

TEST(Cli, MissingFileIsOneLineAndNonZero) {
  const auto r = run_command(kLit + " inspect /no/such/file.safetensors");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("/no/such/file.safetensors"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "expected exactly one line: " << r.output;
}

TEST(Cli, InspectTorchCheckpoints) {
  auto r = run_command(kLit + " inspect " + fixture("dit/dit_tiny.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("format      torch zip"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("tensors     32"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("parameters  183,200"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"hidden_size\":64"), std::string::npos) << r.output;  // config.json beside it
  r = run_command(kLit + " inspect " + fixture("dit/dit_tiny_legacy.pt"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("format      torch legacy"), std::string::npos) << r.output;
  r = run_command(kLit + " inspect " + fixture("dit/dit_tiny_train_ckpt.pt") + " --use-weights model");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("weights     'model' of a training checkpoint (top-level keys: model, ema, opt, args)"),
            std::string::npos)
      << r.output;
}

TEST(Cli, ConvertThenInspectAndLoad) {
  const std::string out = temp_path("dit.safetensors");
  auto r = run_command(kLit + " convert " + fixture("dit/dit_tiny_train_ckpt.pt") + " " + out + " --dtype bf16");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("weights 'ema'"), std::string::npos) << r.output;
  r = run_command(kLit + " inspect " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("format      safetensors"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("BF16 (32)"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("from the file's metadata"), std::string::npos) << r.output;
  const LoadedCheckpoint converted = load_checkpoint(out);
  const LoadedCheckpoint ema = load_checkpoint(fixture("dit/dit_tiny_train_ckpt.pt"));
  ASSERT_EQ(converted.tensors.size(), ema.tensors.size());
  for (const auto& [name, t] : ema.tensors)
    EXPECT_TRUE(at::equal(converted.tensors.at(name), t.to(at::kBFloat16))) << name;
}

TEST(Cli, ConvertStoresClassNamesAndMetadata) {
  const std::string names = temp_path("names.txt"), out = temp_path("named.safetensors");
  {
    std::ofstream f(names);
    for (int i = 0; i < 10; ++i) f << "thing " << i << "\n";
  }
  auto r = run_command(kLit + " convert " + fixture("dit/dit_tiny.pt") + " " + out + " --class-names " + names +
                       " --metadata origin=test");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const LoadedCheckpoint converted = load_checkpoint(out);
  EXPECT_EQ(converted.metadata.at("origin"), "test");
  EXPECT_EQ(converted.metadata.at("class_names").rfind("[\"thing 0\",\"thing 1\"", 0), 0u)
      << converted.metadata.at("class_names");
  // A generated image is then described by its name.
  const std::string dir = temp_path("named_run");
  std::filesystem::remove_all(dir);
  r = run_command(kLit + " generate -q --model " + out + " --vae " + fixture("vae/tiny_sd_vae") +
                  " --class 'thing 3' -n 1 --steps 2 -o " + dir);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_command(kLit + " inspect " + dir + "/000000.png");
  EXPECT_NE(r.output.find("thing 3"), std::string::npos) << r.output;
  r = run_command(kLit + " convert " + fixture("dit/dit_tiny.pt") + " " + out + " --metadata novalue");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("KEY=VALUE"), std::string::npos) << r.output;
}

TEST(Cli, ConvertErrorsAreOneLine) {
  const std::string out = temp_path("never.safetensors");
  for (const std::string& args :
       {fixture("dit/dit_tiny.pt") + " " + out + " --config " + fixture("dit/dit_tiny_io.safetensors"),
        fixture("dit/dit_tiny_train_ckpt.pt") + " " + out + " --use-weights nope",
        fixture("dit/config.json") + " " + out}) {
    const auto r = run_command(kLit + " convert " + args);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_EQ(r.output.rfind("lit: error: ", 0), 0u) << r.output;
    EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "expected exactly one line: " << r.output;
  }
  EXPECT_FALSE(std::ifstream(out).good());
}

TEST(Cli, UnknownSubcommandFails) {
  const auto r = run_command(kLit + " frobnicate");
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace lit
