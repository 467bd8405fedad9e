// `lit train --profile FILE` (tools/cli/step_profiler.h): a Chrome trace of a window of training steps where
// the LibTorch has Kineto (PyTorch's wheels, the GPU machine), one clear line where it has not (Debian's 1.13);
// either way no half-written file under the final name. On CUDA the trace must hold the GPU's kernels.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kernels/runtime/cuda_support.h"
#include "tests/test_util.h"

namespace lit::test {
namespace {

namespace fs = std::filesystem;
const std::string kLit = LIT_CLI_PATH;

std::string tiny_config() {
  const std::string path = temp_path("profile-lit.json");
  std::ofstream(path) << R"({"input_size": 8, "patch_size": 2, "in_channels": 4, "hidden_size": 64, "depth": 2,)"
                      << R"( "num_heads": 2, "mlp_ratio": 4.0, "num_classes": 10, "learn_sigma": true,)"
                      << R"( "attention": "linear", "dwc_kernel": 5})";
  return path;
}

// Runs 6 steps on DEVICE with steps 3-4 profiled into a fresh folder; returns the trace's events, or nothing
// (after checking the error) when this LibTorch cannot write traces.
std::optional<nlohmann::json> profile_run(const std::string& device, const std::string& tag) {
  const std::string dir = fresh_temp_dir(tag), trace = dir + "/trace.json";
  fs::create_directories(dir);
  auto r =
      run_command(kLit + " train --config " + tiny_config() + " --synthetic-data --batch-size 4 --max-steps 6 " +
                  "--log-every 0 --device " + device + " --profile " + trace + " --profile-wait 2 --profile-steps 2");
  if (r.output.find("cannot write a trace") != std::string::npos) {
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.output.find("lit: error: --profile " + trace + ": this LibTorch cannot write a trace ("),
              std::string::npos)
        << r.output;
    EXPECT_TRUE(fs::is_empty(dir)) << "nothing may be left behind";
    return std::nullopt;
  }
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("profile " + trace + ": steps 3-4"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(trace + ".tmp"));
  std::ifstream in(trace);
  EXPECT_TRUE(in.good()) << r.output;
  if (!in.good()) return nlohmann::json::array();
  return nlohmann::json::parse(in).at("traceEvents");
}

int64_t count_events(const nlohmann::json& events, const std::string& category, const std::string& name_part) {
  int64_t n = 0;
  for (const auto& e : events)
    if (e.value("cat", "") == category && e.value("name", "").find(name_part) != std::string::npos) ++n;
  return n;
}

TEST(CliProfile, TraceHoldsTheOperatorsOfTheWindowOrTheCommandSaysWhyNot) {
  const auto events = profile_run("cpu", "profile-cpu");
  if (!events) GTEST_SKIP() << "this LibTorch has no Kineto: the clear error was checked, the trace is not";
  EXPECT_GT(count_events(*events, "cpu_op", "aten::"), 0);
  EXPECT_GT(count_events(*events, "cpu_op", "aten::mm") + count_events(*events, "cpu_op", "aten::addmm"), 0);
}

TEST(CliProfile, OnCudaTheTraceHoldsTheKernels) {
  if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device in this build/machine";
  const auto events = profile_run("cuda", "profile-cuda");
  if (!events) GTEST_SKIP() << "this LibTorch has no Kineto";
  EXPECT_GT(count_events(*events, "kernel", ""), 0);
}

TEST(CliProfile, AnEmptyWindowOrAMissingFolderIsOneLineBeforeTraining) {
  const std::string config = tiny_config();
  auto r = run_command(kLit + " train --config " + config + " --synthetic-data --max-steps 2 --profile " +
                       temp_path("p.json") + " --profile-steps 0");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("--profile-steps >= 1"), std::string::npos) << r.output;
  r = run_command(kLit + " train --config " + config + " --synthetic-data --max-steps 2 --profile /nonexistent/p.json");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.output.find("lit: error: --profile /nonexistent/p.json: no folder /nonexistent"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("step "), std::string::npos) << "no training step before the error: " << r.output;
}

}  // namespace
}  // namespace lit::test
