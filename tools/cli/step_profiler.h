// `--profile FILE` of lit train / lit distill: PyTorch's profiler (Kineto: the CPU operators and, on a GPU, every
// CUDA kernel and copy through CUPTI) over a window of training steps, saved as a Chrome trace (chrome://tracing,
// ui.perfetto.dev; tools/trace_summary.py tables it). The window skips the first `wait` steps (allocator and
// kernel warm-up), then records `active` steps.
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <string>

namespace lit::cli {

struct ProfileOptions {
  std::string path;  // --profile FILE ("": off)
  int64_t wait = 5, steps = 5;
};

class StepProfiler {
 public:
  // Nothing is recorded when `path` is empty. Throws lit::Error for a window of no steps.
  StepProfiler(std::string path, int64_t wait, int64_t active, const c10::Device& device);
  StepProfiler(const ProfileOptions& o, const c10::Device& device) : StepProfiler(o.path, o.wait, o.steps, device) {}
  // The line a command prints once the trace is written.
  std::string written_line() const;
  ~StepProfiler();  // stops a recording still running (without saving it)
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;

  // Call after every step with the number of steps this run has done: starts the recording after `wait` of
  // them, stops it and writes the trace after `wait + active`. Returns true when it wrote the trace.
  bool after_step(int64_t steps_done);
  // Stops a recording cut short (the run ended inside the window) and writes what it holds. True if it wrote.
  bool finish();
  const std::string& path() const { return path_; }

 private:
  void start();
  void stop_and_save();
  std::string path_;
  int64_t wait_, active_, recorded_ = 0;
  bool cuda_;
  bool recording_ = false, done_ = false;
};

}  // namespace lit::cli
