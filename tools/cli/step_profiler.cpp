#include "tools/cli/step_profiler.h"

#include <torch/csrc/autograd/profiler_kineto.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <system_error>

#include "common/error.h"

namespace lit::cli {

namespace prof = torch::autograd::profiler;
namespace impl = torch::profiler::impl;

namespace {

impl::ProfilerConfig config() {
  return impl::ProfilerConfig(impl::ProfilerState::KINETO, /*report_input_shapes=*/true);
}

std::string first_line(const std::string& s) {
  return s.substr(0, s.find('\n'));
}

std::set<impl::ActivityType> activities(bool cuda) {
  std::set<impl::ActivityType> a{impl::ActivityType::CPU};
  if (cuda) a.insert(impl::ActivityType::CUDA);
  return a;
}

}  // namespace

StepProfiler::StepProfiler(std::string path, int64_t wait, int64_t active, const c10::Device& device)
    : path_(std::move(path)), wait_(wait), active_(active), cuda_(device.is_cuda()) {
  if (path_.empty()) return;
  if (wait_ < 0 || active_ < 1)
    throw Error("--profile " + path_ + ": the window needs --profile-wait >= 0 and --profile-steps >= 1");
  const std::filesystem::path parent = std::filesystem::absolute(path_).parent_path();
  if (!std::filesystem::is_directory(parent))
    throw Error("--profile " + path_ + ": no folder " + parent.string() + " to write the trace in");
  // Some LibTorch builds (Debian's 1.13) have no Kineto and cannot save a trace: say so before any training.
  const std::string probe = path_ + ".probe";
  try {
    prof::prepareProfiler(config(), activities(false));
    prof::enableProfiler(config(), activities(false));
    std::unique_ptr<prof::ProfilerResult> r = prof::disableProfiler();
    if (r) r->save(probe);
    std::remove(probe.c_str());
  } catch (const std::exception& e) {
    std::remove(probe.c_str());
    throw Error("--profile " + path_ + ": this LibTorch cannot write a trace (" + first_line(e.what()) +
                "); PyTorch's own wheels can (the GPU machine's LibTorch 2.x)");
  }
  if (wait_ == 0) start();
}

StepProfiler::~StepProfiler() {
  if (recording_) {
    try {
      prof::disableProfiler();
    } catch (...) {
    }
  }
}

void StepProfiler::start() {
  prof::prepareProfiler(config(), activities(cuda_));
  prof::enableProfiler(config(), activities(cuda_));
  recording_ = true;
}

void StepProfiler::stop_and_save() {
  recording_ = false;
  done_ = true;
  std::unique_ptr<prof::ProfilerResult> result = prof::disableProfiler();
  if (!result) throw Error("--profile " + path_ + ": the profiler returned no result");
  // Written under a temporary name and renamed: never a half-written trace under the final name.
  const std::string tmp = path_ + ".tmp";
  result->save(tmp);
  std::error_code ec;
  std::filesystem::rename(tmp, path_, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw Error("--profile " + path_ + ": " + ec.message());
  }
}

bool StepProfiler::after_step(int64_t steps_done) {
  if (path_.empty() || done_) return false;
  if (!recording_ && steps_done == wait_) start();
  if (recording_) recorded_ = steps_done - wait_;
  if (recording_ && steps_done >= wait_ + active_) {
    stop_and_save();
    return true;
  }
  return false;
}

bool StepProfiler::finish() {
  if (!recording_) return false;
  stop_and_save();
  return true;
}

std::string StepProfiler::written_line() const {
  return "profile " + path_ + ": steps " + std::to_string(wait_ + 1) + "-" + std::to_string(wait_ + recorded_) +
         (cuda_ ? " (CPU operators, CUDA kernels and copies)" : " (CPU operators)") +
         ", a Chrome trace (tools/trace_summary.py " + path_ + " tables it)";
}

}  // namespace lit::cli
