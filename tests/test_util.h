// Helpers shared by the test suites: fixture paths, relative error, lit::Error messages, temporary files,
// running the CLI.
#pragma once

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "common/error.h"

namespace lit::test {

inline std::string fixture(const std::string& rel) {
  return std::string(LIT_FIXTURES_DIR) + "/" + rel;
}

// A path under the build tree's test scratch folder, unique per test.
inline std::string temp_path(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return std::string(LIT_TEST_TMPDIR) + "/" + info->test_suite_name() + "." + info->name() + "." + name;
}

// ||a - b|| / ||b|| in float64; infinity if either holds a NaN or the shapes differ.
// The message of the lit::Error that fn throws, or "(no lit::Error)" when it throws none.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const lit::Error& e) {
    return e.what();
  }
  return "(no lit::Error)";
}

inline double rel_error(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) return INFINITY;
  const at::Tensor a64 = a.detach().to(at::kCPU, at::kDouble), b64 = b.detach().to(at::kCPU, at::kDouble);
  if (at::isnan(a64).any().item<bool>() || at::isnan(b64).any().item<bool>()) return INFINITY;
  const double denom = b64.norm().item<double>();
  const double num = (a64 - b64).norm().item<double>();
  return denom == 0 ? num : num / denom;
}

// temp_path(name) as an empty place: whatever an earlier run left there is removed.
inline std::string fresh_temp_dir(const std::string& name) {
  const std::string dir = temp_path(name);
  std::filesystem::remove_all(dir);
  return dir;
}

// The non-empty lines of a text file (0 when it cannot be read).
inline size_t line_count(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  for (std::string l; std::getline(in, l);) n += l.empty() ? 0 : 1;
  return n;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs a shell command line, capturing its output.
inline CommandResult run_command(const std::string& command) {
  CommandResult r;
  std::FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.output.append(buf, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace lit::test
