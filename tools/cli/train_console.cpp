#include "tools/cli/train_console.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <vector>

#include "tools/cli/commands.h"
#include "tools/cli/interrupt.h"

namespace lit::cli {

std::string step_line(const train::StepStats& s, int64_t max_steps, bool distill) {
  char line[320];
  int n = std::snprintf(line, sizeof line, "step %lld/%lld  loss %.4f (mse %.4f vb %.4f",
                        static_cast<long long>(s.step), static_cast<long long>(max_steps), s.total, s.mse, s.vb);
  if (distill) n += std::snprintf(line + n, sizeof line - n, " kd_eps %.4g kd_var %.4g", s.kd_eps, s.kd_var);
  n += std::snprintf(line + n, sizeof line - n, ")  grad %.3f  lr %.2e  %.2f steps/s  %.1f img/s", s.grad_norm, s.lr,
                     1.0 / std::max(s.step_seconds, 1e-9), s.images_per_second);
  if (s.gpu_memory_bytes > 0)
    std::snprintf(line + n, sizeof line - n, "  mem %.2f GiB", static_cast<double>(s.gpu_memory_bytes) / (1 << 30));
  return line;
}

void run_with_console(const TrainerRun& run, const TrainConsoleOptions& o, const c10::Device& device,
                      std::ostream& out) {
  std::vector<double> step_seconds;
  const InterruptGuard interrupt;
  StepProfiler profiler(o.chatty ? o.profile : ProfileOptions{}, device);
  const auto start = std::chrono::steady_clock::now();
  run(
      [&](const train::StepStats& s) {
        step_seconds.push_back(s.step_seconds);
        if (profiler.after_step(static_cast<int64_t>(step_seconds.size())) && o.chatty)
          out << profiler.written_line() << std::endl;
        if (o.chatty && o.log_every > 0 && (s.step % o.log_every == 0 || s.step == o.max_steps))
          out << step_line(s, o.max_steps, o.distill) << std::endl;
      },
      [] { return InterruptGuard::requested().load(); });
  if (profiler.finish() && o.chatty) out << profiler.written_line() << std::endl;
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (o.chatty && !step_seconds.empty()) {
    std::vector<double> steady(step_seconds.begin() + static_cast<long>(std::min<size_t>(3, step_seconds.size() - 1)),
                               step_seconds.end());
    std::sort(steady.begin(), steady.end());
    const double median = steady[steady.size() / 2];
    char line[256];
    std::snprintf(line, sizeof line, "done: %zu steps in %.1f s; median step %.4f s = %.3f steps/s, %.1f images/s",
                  step_seconds.size(), total, median, 1.0 / median, static_cast<double>(o.batch_size) / median);
    out << line << std::endl;
  }
  if (InterruptGuard::requested()) throw ExitStatus{InterruptGuard::exit_status()};
}

}  // namespace lit::cli
