// The `lit` binary as a user runs it: exit codes and one-line errors.
#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace lit {
namespace {

using test::fixture;
using test::run_command;

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

TEST(Cli, UnknownSubcommandFails) {
  const auto r = run_command(kLit + " frobnicate");
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace lit
