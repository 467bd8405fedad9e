// `lit make-captions` as a user runs it: a small data set that `lit extract-latents` reads as any caption
// folder, and the one-line errors of bad options and occupied output folders.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/test_util.h"
#include "tools/train/fashion_mnist.h"

namespace lit {
namespace {

namespace fs = std::filesystem;
using test::fixture;
using test::line_count;
using test::run_command;

const std::string kLit = LIT_CLI_PATH;

bool have_fashion_mnist() {
  return fs::exists(train::default_fashion_mnist_dir() + "/train-images-idx3-ubyte.gz");
}

void expect_one_line_error(const test::CommandResult& r, const std::string& says) {
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(says), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('\n'), r.output.size() - 1) << "expected exactly one line: " << r.output;
}

TEST(CliMakeCaptions, BadOptionsAreOneLineErrors) {
  const std::string dir = test::fresh_temp_dir("data");
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " -n 0"), "-n 0");
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " -n -5"), "-n");
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " -n ten"), "-n");
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " -n 20000000"), "10000000");
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " --size 63"), "63");
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " --two-garment-fraction 2"),
                        "--two-garment-fraction");
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " --split valid"), "--split");
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " -n 3 --data /no/fmnist"),
                        "/no/fmnist/train-images-idx3-ubyte.gz");
  expect_one_line_error(run_command(kLit + " make-captions -o /no/such/parent/data -n 3"), "/no/such/parent");
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_FALSE(fs::exists(dir + ".partial"));
}

TEST(CliMakeCaptions, RefusesAnExistingFolder) {
  const std::string dir = test::fresh_temp_dir("data");
  fs::create_directories(dir);
  std::ofstream(dir + "/photo.png") << "not ours";
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " -n 3"), dir + ": exists and is not empty");
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " -n 3 --overwrite"), "refusing");
  EXPECT_TRUE(fs::exists(dir + "/photo.png"));
  const std::string file = test::fresh_temp_dir("file");
  std::ofstream(file) << "x";
  expect_one_line_error(run_command(kLit + " make-captions -o " + file + " -n 3"), "is not a folder");
}

TEST(CliMakeCaptions, WritesADataSetThatExtractLatentsReads) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const std::string root = test::fresh_temp_dir("run");
  fs::create_directories(root);
  const std::string dir = root + "/canvases";
  auto r = run_command(kLit + " make-captions -o " + dir + " -n 12 --seed 4 --split t10k --size 32");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("wrote   " + dir + ": 12 canvases"), std::string::npos) << r.output;
  EXPECT_EQ(line_count(dir + "/metadata.jsonl"), 12u);
  EXPECT_EQ(line_count(dir + "/corpus.txt"), 12u);
  EXPECT_EQ(line_count(dir + "/eval-prompts.jsonl"), 240u);
  EXPECT_TRUE(fs::exists(dir + "/000011.png"));
  EXPECT_TRUE(fs::exists(dir + "/000011.txt"));
  EXPECT_FALSE(fs::exists(dir + ".partial"));
  // A second run into it is refused; --overwrite replaces it.
  expect_one_line_error(run_command(kLit + " make-captions -o " + dir + " -n 5 --split t10k"), "--overwrite");
  r = run_command(kLit + " make-captions -o " + dir + " -n 5 --seed 4 --split t10k --size 32 --overwrite");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(line_count(dir + "/corpus.txt"), 5u);
  EXPECT_FALSE(fs::exists(dir + "/000011.png"));
  // The caption-folder layout: `lit extract-latents --text-encoder` encodes it like any caption folder.
  r = run_command(kLit + " extract-latents --text-encoder " + fixture("t2i/t5_tiny/single") + " --data " + dir +
                  " --image-size 32 --max-length 24 -o " + root + "/features");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("5 captions"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace lit
