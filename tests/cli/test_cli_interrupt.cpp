// Stopping a long command (tools/cli/interrupt.h): the first Ctrl-C or SIGTERM asks for a checkpoint at the
// next step (complete images for generate); a repeat within a second is the same request delivered twice
// (coreutils `timeout -s INT` signals the command and then its whole process group), a later one ends the
// program at once. The end-to-end tests stop `lit train` and `lit distill` with `timeout`, as a batch script
// or a scheduler does, and resume from what they left.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "tests/test_util.h"
#include "tools/cli/interrupt.h"

namespace lit::test {
namespace {

namespace fs = std::filesystem;
using cli::InterruptGuard;

const std::string kLit = LIT_CLI_PATH;

TEST(InterruptGuard, TheSameRequestDeliveredTwiceOnlyAsksToStop) {
  const InterruptGuard guard;
  EXPECT_FALSE(InterruptGuard::requested());
  std::raise(SIGINT);
  std::raise(SIGINT);  // as `timeout -s INT` delivers it: to the command, then to its process group
  EXPECT_TRUE(InterruptGuard::requested());
  EXPECT_EQ(InterruptGuard::exit_status(), 130);
}

TEST(InterruptGuard, SigtermAsksToStopAndSaysSo) {
  const InterruptGuard guard;
  std::raise(SIGTERM);
  EXPECT_TRUE(InterruptGuard::requested());
  EXPECT_EQ(InterruptGuard::exit_status(), 143);
}

TEST(InterruptGuard, ASecondRequestLaterEndsTheProgramAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        const InterruptGuard guard;
        std::raise(SIGINT);
        std::this_thread::sleep_for(std::chrono::duration<double>(cli::kRepeatWindowSeconds + 0.1));
        std::raise(SIGINT);
        std::exit(0);
      },
      testing::ExitedWithCode(130), "");
}

TEST(InterruptGuard, ANewGuardStartsWithoutARequestAndThePreviousHandlersComeBack) {
  auto before = std::signal(SIGTERM, SIG_IGN);
  {
    const InterruptGuard first;
    std::raise(SIGTERM);
    EXPECT_TRUE(InterruptGuard::requested());
  }
  {
    const InterruptGuard second;
    EXPECT_FALSE(InterruptGuard::requested());
  }
  EXPECT_EQ(std::signal(SIGTERM, before), SIG_IGN);
}

// The last checkpoint step of a run folder (-1: none).
int64_t last_checkpoint_step(const std::string& run) {
  int64_t last = -1;
  if (!fs::is_directory(run + "/checkpoints")) return last;
  for (const auto& e : fs::directory_iterator(run + "/checkpoints")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("step-", 0) == 0) last = std::max<int64_t>(last, std::stoll(name.substr(5)));
  }
  return last;
}

// Stops COMMAND (a training run into RUN) with `timeout`'s signal after SECONDS, then resumes it for two more
// steps: the stop must leave a checkpoint of the step it reached, the resume must start there.
void expect_stop_leaves_a_checkpoint(const std::string& command, const std::string& signal, const std::string& run) {
  const std::string unbounded = command + " --max-steps 1000000 -o " + run;
  auto r = run_command("timeout -s " + signal + " 8 " + unbounded);
  ASSERT_EQ(r.exit_code, 124) << r.output;  // timeout's status: it sent the signal, the command then ended
  EXPECT_NE(r.output.find("done: "), std::string::npos) << r.output;
  const int64_t step = last_checkpoint_step(run);
  ASSERT_GT(step, 0) << r.output;
  EXPECT_NE(r.output.find("checkpoint " + run + "/checkpoints/step-"), std::string::npos) << r.output;

  r = run_command(command + " --max-steps " + std::to_string(step + 2) + " -o " + run + " --resume " + run);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(std::regex_search(
      r.output, std::regex("resumed from .*step-0*" + std::to_string(step) + " at step " + std::to_string(step))))
      << r.output;
  EXPECT_EQ(last_checkpoint_step(run), step + 2);
}

TEST(CliInterrupt, TrainStoppedByTimeoutsSigintSavesItsStepAndResumes) {
  const std::string config = temp_path("interrupt-lit.json");
  std::ofstream(config) << R"({"input_size": 8, "patch_size": 2, "in_channels": 4, "hidden_size": 64, "depth": 2,)"
                        << R"( "num_heads": 2, "mlp_ratio": 4.0, "num_classes": 10, "learn_sigma": true,)"
                        << R"( "attention": "linear", "dwc_kernel": 5})";
  expect_stop_leaves_a_checkpoint(
      kLit + " train --config " + config + " --synthetic-data --batch-size 2 --seed 3 --data-threads 1 --log-every 0",
      "INT", fresh_temp_dir("interrupt-train"));
}

TEST(CliInterrupt, DistillStoppedBySigtermSavesItsStepAndResumes) {
  expect_stop_leaves_a_checkpoint(kLit + " distill --teacher " + fixture("dit/dit_tiny.pt") +
                                      " --synthetic-data --batch-size 2 --seed 3 --data-threads 1 --log-every 0"
                                      " --no-pin-memory",  // accepted everywhere; only CUDA runs pin
                                  "TERM", fresh_temp_dir("interrupt-distill"));
}

}  // namespace
}  // namespace lit::test
