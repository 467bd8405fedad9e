// Sharded generation: `lit generate --shard K/N` (or RANK/WORLD_SIZE from the launcher), `lit merge-npz`, and
// `lit fid`'s A,B,... inputs. The union of the shards must be the unsharded run byte for byte.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "tests/dist/dist_test_util.h"
#include "tools/cli/shards.h"
#include "weights/npy.h"

namespace lit::test {
namespace {

namespace fs = std::filesystem;

std::string bytes_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// 7 images in batches of 2 (the last batch holds one image): shard 0/2 makes batches 0 and 2 (images 0, 1,
// 4, 5), shard 1/2 batches 1 and 3 (images 2, 3, 6).
const std::string kRun = " generate -q --model " + fixture("dit/dit_tiny.pt") + " --vae " + fixture("vae/tiny_sd_vae") +
                         " -n 7 --batch-size 2 --sampler ddim --steps 4 --class 1 --class 2 --seed 3";

std::string image(const std::string& dir, int i) {
  return dir + "/00000" + std::to_string(i) + ".png";
}

TEST(ShardedGeneration, UnionOfShardsIsTheUnshardedRunByteForByte) {
  const std::string full = fresh_temp_dir("full"), a = fresh_temp_dir("a"), b = fresh_temp_dir("b");
  const std::string env_b = fresh_temp_dir("env_b"), shared = fresh_temp_dir("shared");
  auto r = run_command(kLit + kRun + " -o " + full + " --npz " + full + ".npz");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ((r = run_command(kLit + kRun + " --shard 0/2 -o " + a)).exit_code, 0) << r.output;
  ASSERT_EQ((r = run_command(kLit + kRun + " --shard 1/2 -o " + b)).exit_code, 0) << r.output;
  // Under torchrun without --shard: RANK/WORLD_SIZE name the shard.
  ASSERT_EQ((r = run_command("RANK=1 WORLD_SIZE=2 " + kLit + kRun + " -o " + env_b)).exit_code, 0) << r.output;
  // Both shards into one folder (a shared file system).
  ASSERT_EQ((r = run_command(kLit + kRun + " --shard 1/2 -o " + shared)).exit_code, 0) << r.output;
  ASSERT_EQ((r = run_command(kLit + kRun + " --shard 0/2 -o " + shared)).exit_code, 0) << r.output;

  for (int i = 0; i < 7; ++i) {
    const bool in_a = (i / 2) % 2 == 0;
    EXPECT_EQ(fs::exists(image(a, i)), in_a) << i;
    EXPECT_EQ(fs::exists(image(b, i)), !in_a) << i;
    EXPECT_EQ(bytes_of(image(in_a ? a : b, i)), bytes_of(image(full, i))) << "image " << i;
    EXPECT_EQ(bytes_of(image(shared, i)), bytes_of(image(full, i))) << "image " << i;
    if (!in_a) {
      EXPECT_EQ(bytes_of(image(env_b, i)), bytes_of(image(full, i))) << "image " << i;
    }
  }
  EXPECT_FALSE(fs::exists(image(env_b, 0)));

  // The merged batch is the unsharded run's --npz: the same entries, arrays equal byte for byte (arr_0 and the
  // classes as arr_1).
  const std::string merged = temp_path("merged.npz");
  r = run_command(kLit + " merge-npz -o " + merged + " " + a + " " + b);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("merged 7 images from 2 folders (with their classes)"), std::string::npos) << r.output;
  const auto want = read_npz(full + ".npz"), got = read_npz(merged);
  ASSERT_EQ(got.size(), want.size());
  for (size_t k = 0; k < want.size(); ++k) {
    EXPECT_EQ(got[k].first, want[k].first);
    EXPECT_TRUE(at::equal(got[k].second, want[k].second)) << want[k].first;
  }
  // The files differ only in the zip entries' modification times (ZipWriter stamps the time of writing).
  EXPECT_EQ(fs::file_size(merged), fs::file_size(full + ".npz"));

  // lit fid takes the shards as one input: A,B -> the images of both, in the run's order.
  const FidInput shards = cli::open_fid_shards(a + "," + b);
  ASSERT_EQ(shards.files.size(), 7u);
  for (int i = 0; i < 7; ++i)
    EXPECT_EQ(fs::path(shards.files[static_cast<size_t>(i)]).filename(), fs::path(image(full, i)).filename());
  const FidInput batches = cli::open_fid_shards(merged + "," + full + ".npz");
  EXPECT_EQ(batches.num_images(), 14);
  EXPECT_EQ(batches.labels.numel(), 14);
}

TEST(ShardedGeneration, ErrorsSayWhatToDo) {
  const std::string a = fresh_temp_dir("a");
  auto r = run_command(kLit + kRun + " --shard 0/2 -o " + a + " --npz " + a + ".npz");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("a shard holds part of the images; make the .npz once every shard is done (lit merge-npz"),
            std::string::npos)
      << r.output;
  for (const char* bad : {"2/2", "1", "a/b", "-1/2", "0/0"}) {
    r = run_command(kLit + kRun + " --shard " + bad + " -o " + a);
    EXPECT_NE(r.output.find("expected K/N with 0 <= K < N"), std::string::npos) << bad << ": " << r.output;
  }
  // A merge with a shard missing names the first missing image.
  ASSERT_EQ((r = run_command(kLit + kRun + " --shard 0/2 -o " + a)).exit_code, 0) << r.output;
  r = run_command(kLit + " merge-npz -o " + temp_path("m.npz") + " " + a);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("image 2 is missing"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("has every shard finished?"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(temp_path("m.npz")));
  // Overlapping shards (the same image twice) are refused.
  r = run_command(kLit + " merge-npz -o " + temp_path("m.npz") + " " + a + " " + a);
  EXPECT_NE(r.output.find("is there twice"), std::string::npos) << r.output;
}

TEST(ShardedGeneration, ShardsFromTheLauncher) {
  EXPECT_EQ(cli::parse_shard("3/4").index, 3);
  EXPECT_EQ(cli::parse_shard("3/4").count, 4);
  const cli::Shard s{1, 3};
  // Batches of 2: batch b = i / 2 belongs to shard b mod 3.
  std::vector<int64_t> mine;
  for (int64_t i = 0; i < 14; ++i)
    if (s.has_image(i, 2)) mine.push_back(i);
  EXPECT_EQ(mine, (std::vector<int64_t>{2, 3, 8, 9}));
  ::setenv("RANK", "2", 1);
  ::setenv("WORLD_SIZE", "3", 1);
  ::setenv("LOCAL_RANK", "1", 1);
  EXPECT_EQ(cli::resolve_shard("").text(), "2/3");
  EXPECT_EQ(cli::resolve_shard("0/5").text(), "0/5");  // --shard wins
  EXPECT_EQ(cli::shard_device("cuda"), "cuda:1");
  EXPECT_EQ(cli::shard_device("cuda:0"), "cuda:0");
  EXPECT_EQ(cli::shard_device("cpu"), "cpu");
  ::unsetenv("RANK");
  ::unsetenv("WORLD_SIZE");
  ::unsetenv("LOCAL_RANK");
  EXPECT_EQ(cli::resolve_shard("").text(), "0/1");
}

}  // namespace
}  // namespace lit::test
