// Data-parallel `lit train` and `lit distill` as torchrun runs them: the tests start the `lit` binary once per
// rank with the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR,
// MASTER_PORT) and the processes meet through Gloo on 127.0.0.1.
//
// Tolerance of "world size 2 equals world size 1": the global batch, its noise and timesteps are the same;
// what differs is float32 summation order (two half-batch means averaged instead of one mean), about 1e-7
// relative per gradient, carried through AdamW's steps. The weights must agree to 1e-5 relative (L2 over
// every tensor), and training must have moved them far more than that.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "tests/dist/dist_test_util.h"
#include "weights/safetensors.h"

namespace lit::test {
namespace {

namespace fs = std::filesystem;

const std::string kTinyLit =
    R"({"input_size": 8, "patch_size": 2, "in_channels": 4, "hidden_size": 64, "depth": 2, "num_heads": 2,)"
    R"( "mlp_ratio": 4.0, "class_dropout_prob": 0.1, "num_classes": 10, "learn_sigma": true,)"
    R"( "attention": "linear", "dwc_kernel": 5})";

// A tiny LiT config file in the test's scratch folder.
std::string tiny_config() {
  const std::string path = temp_path("lit.json");
  std::ofstream(path) << kTinyLit;
  return path;
}

// Common options: tiny model, synthetic data, deterministic and quick.
std::string train_args(const std::string& config, int64_t batch, int64_t steps) {
  return "train --config " + config + " --synthetic-data --batch-size " + std::to_string(batch) + " --max-steps " +
         std::to_string(steps) + " --lr 1e-3 --ema-decay 0.9 --seed 11 --data-threads 1 --log-every 1";
}

std::string distill_args(int64_t batch, int64_t steps) {
  return "distill --teacher " + fixture("dit/dit_tiny.pt") + " --synthetic-data --batch-size " + std::to_string(batch) +
         " --max-steps " + std::to_string(steps) +
         " --lr 1e-3 --ema-decay 0.9 --seed 11 --data-threads 1 --log-every 1";
}

// ---------------------------------------------------------------------------------------------------------
// World size 2 (per-rank batch B/2) equals world size 1 (batch B)
// ---------------------------------------------------------------------------------------------------------
void expect_world_sizes_agree(const std::function<std::string(int64_t steps)>& args_for, const std::string& tag) {
  const std::string args = args_for(4);
  const std::string one = fresh_temp_dir(tag + "-ws1"), two = fresh_temp_dir(tag + "-ws2");
  const std::string env1 = fresh_temp_dir(tag + "-env1");
  const auto r = run_command(kLit + " " + args + " -o " + one);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto ranks = run_ranks(2, args + " -o " + two);
  for (const auto& rank : ranks) ASSERT_EQ(rank.exit_code, 0) << rank.output;
  EXPECT_NE(ranks[0].output.find("ranks   2 (gloo, 4 images per rank and step"), std::string::npos) << ranks[0].output;
  EXPECT_EQ(ranks[1].output.find("step "), std::string::npos) << "only rank 0 prints: " << ranks[1].output;
  // Under the launcher with one rank: the same code path, the same numbers bit for bit.
  const auto single = run_ranks(1, args + " -o " + env1);
  ASSERT_EQ(single[0].exit_code, 0) << single[0].output;

  const std::string last = "/checkpoints/step-0000004/";
  for (const char* file : {"model.safetensors", "ema.safetensors"}) {
    const double err = weights_rel_error(two + last + file, one + last + file);
    EXPECT_LE(err, 1e-5) << file;
    std::cout << tag << " " << file << ": world size 2 vs 1, relative L2 difference " << err << "\n";
    EXPECT_EQ(weights_rel_error(env1 + last + file, one + last + file), 0.0) << file;
  }
  // Training moved the weights far beyond the tolerance (the comparison is not of two untouched inits).
  const auto init = run_command(kLit + " " + args_for(0) + " -o " + one + "-init");
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_GT(
      weights_rel_error(one + "-init/checkpoints/step-0000000/model.safetensors", one + last + "model.safetensors"),
      1e-3);
  // The same loss curve: the logged losses are the global batch's.
  EXPECT_EQ(log_losses(one).size(), 4u);
  const auto l1 = log_losses(one), l2 = log_losses(two);
  ASSERT_EQ(l1.size(), l2.size());
  for (size_t i = 0; i < l1.size(); ++i) EXPECT_NEAR(l2[i], l1[i], 1e-5 * std::abs(l1[i])) << "step " << i + 1;
  // Rank 0 alone writes: one log, one set of checkpoints.
  EXPECT_TRUE(fs::exists(two + "/log.jsonl"));
}

TEST(DataParallel, TrainWorldSize2EqualsWorldSize1) {
  const std::string config = tiny_config();
  expect_world_sizes_agree([&](int64_t steps) { return train_args(config, 8, steps); }, "train");
}

TEST(DataParallel, DistillWorldSize2EqualsWorldSize1) {
  expect_world_sizes_agree([](int64_t steps) { return distill_args(8, steps); }, "distill");
}

// ---------------------------------------------------------------------------------------------------------
// Resume: with the same world size (bit for bit), and with another one
// ---------------------------------------------------------------------------------------------------------
TEST(DataParallel, StopAndResumeWithWorldSize2EqualsStraightRun) {
  const std::string config = tiny_config();
  const std::string straight = fresh_temp_dir("straight"), stopped = fresh_temp_dir("stopped");
  for (const auto& r : run_ranks(2, train_args(config, 8, 6) + " -o " + straight))
    ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const auto& r : run_ranks(2, train_args(config, 8, 3) + " -o " + stopped)) ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto resumed = run_ranks(2, train_args(config, 8, 6) + " -o " + stopped + " --resume " + stopped);
  for (const auto& r : resumed) ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(resumed[0].output.find("resumed from"), std::string::npos) << resumed[0].output;
  const std::string last = "/checkpoints/step-0000006/";
  for (const char* file : {"model.safetensors", "ema.safetensors"})
    EXPECT_EQ(weights_rel_error(stopped + last + file, straight + last + file), 0.0) << file;
  EXPECT_EQ(log_losses(stopped), log_losses(straight));
}

TEST(DataParallel, WorldSize2ResumedWithWorldSize1) {
  const std::string config = tiny_config();
  const std::string straight = fresh_temp_dir("straight1"), mixed = fresh_temp_dir("mixed");
  ASSERT_EQ(run_command(kLit + " " + train_args(config, 8, 6) + " -o " + straight).exit_code, 0);
  for (const auto& r : run_ranks(2, train_args(config, 8, 3) + " -o " + mixed)) ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto r = run_command(kLit + " " + train_args(config, 8, 6) + " -o " + mixed + " --resume " + mixed);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string last = "/checkpoints/step-0000006/";
  for (const char* file : {"model.safetensors", "ema.safetensors"})
    EXPECT_LE(weights_rel_error(mixed + last + file, straight + last + file), 1e-5) << file;
}

// ---------------------------------------------------------------------------------------------------------
// Failures: ranks that disagree, a rank that dies
// ---------------------------------------------------------------------------------------------------------
TEST(DataParallel, RanksThatDisagreeOnTheConfigStopWithAClearError) {
  const std::string config = tiny_config(), dir = fresh_temp_dir("disagree");
  const auto ranks = run_ranks(2, train_args(config, 8, 2) + " --dist-timeout 20 -o " + dir, {"", " --warmup 5"}, 60);
  for (const auto& r : ranks) {
    EXPECT_NE(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("the ranks disagree on the training run: rank(s) 1 differ from rank 0"), std::string::npos)
        << r.output;
  }
  EXPECT_FALSE(fs::exists(dir + "/checkpoints/step-0000002"));
}

TEST(DataParallel, AKilledRankEndsTheOthersWithinTheTimeout) {
  const std::string config = tiny_config(), dir = fresh_temp_dir("killed");
  const int port = free_port();
  const std::string args =
      train_args(config, 8, 1000000) + " --checkpoint-every 2 --keep 100 --dist-timeout 20 -o " + dir;
  Process rank0 = spawn_rank(0, 2, port, args, temp_path("rank0.txt"));
  Process rank1 = spawn_rank(1, 2, port, args, temp_path("rank1.txt"));
  // Let them train a few steps (and write a few checkpoints), then kill rank 1 without warning.
  const auto start = std::chrono::steady_clock::now();
  while (log_losses(dir).size() < 5 && std::chrono::steady_clock::now() - start < std::chrono::seconds(60))
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_GE(log_losses(dir).size(), 5u) << read_text(rank0.output) << read_text(rank1.output);
  ::kill(rank1.pid, SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  rank1.wait(10);
  const int code = rank0.wait(60);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  const std::string out = read_text(rank0.output);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(code, kStillRunning) << "rank 0 hangs: " << out;
  EXPECT_LT(seconds, 20 + 10) << "rank 0 took longer than its timeout to give up";
  EXPECT_NE(out.find("lit: error: data parallel (rank 0 of 2, gloo): "), std::string::npos) << out;
  EXPECT_NE(out.find("another rank has exited or stopped answering (timeout 20 s)"), std::string::npos) << out;
  std::cout << "rank 0 ended " << seconds << " s after rank 1 was killed: " << out.substr(out.find("lit: error:"))
            << "\n";
  // Every checkpoint left is whole; no temporary folder is left behind.
  int whole = 0;
  for (const auto& e : fs::directory_iterator(dir + "/checkpoints")) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
    for (const char* f : {"model.safetensors", "ema.safetensors", "optimizer.pt", "trainer.safetensors"})
      EXPECT_TRUE(fs::exists(e.path() / f)) << name << "/" << f;
    ++whole;
  }
  EXPECT_GE(whole, 2);
}

// ---------------------------------------------------------------------------------------------------------
// --seed seeds the weights' initialisation
// ---------------------------------------------------------------------------------------------------------
TEST(Seed, TwoScratchRunsWithOneSeedStartEqual) {
  const std::string config = tiny_config();
  const std::string a = fresh_temp_dir("a"), b = fresh_temp_dir("b"), c = fresh_temp_dir("c");
  const std::string args = "train --config " + config + " --synthetic-data --max-steps 0 --seed ";
  ASSERT_EQ(run_command(kLit + " " + args + "5 -o " + a).exit_code, 0);
  ASSERT_EQ(run_command(kLit + " " + args + "5 -o " + b).exit_code, 0);
  ASSERT_EQ(run_command(kLit + " " + args + "6 -o " + c).exit_code, 0);
  const std::string file = "/checkpoints/step-0000000/model.safetensors";
  EXPECT_EQ(weights_rel_error(a + file, b + file), 0.0);
  EXPECT_GT(weights_rel_error(a + file, c + file), 0.1);
}

}  // namespace
}  // namespace lit::test
