// The console side of a training run, shared by `lit train` and `lit distill` on class and text models: a
// line every log_every steps, the --profile window, Ctrl-C / SIGTERM (a checkpoint at the next step, then exit
// status 130 / 143), and the closing "done:" line with the median step time (the first 3 steps, allocator
// and kernel warm-up, left out).
#pragma once

#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <ostream>

#include "tools/cli/step_profiler.h"
#include "tools/train/trainer.h"

namespace lit::cli {

struct TrainConsoleOptions {
  bool chatty = true;  // rank 0: lines, the profile
  int64_t log_every = 10, max_steps = 0, batch_size = 0;
  bool distill = false;  // the step line shows the distillation terms
  ProfileOptions profile;
};

// The options of a command's request (TrainCommandOptions, TextTrainRequest: log_every, train.max_steps,
// train.batch_size, distill, profile).
template <class Request>
TrainConsoleOptions console_options(const Request& r, bool chatty) {
  TrainConsoleOptions o;
  o.chatty = chatty;
  o.log_every = r.log_every;
  o.max_steps = r.train.max_steps;
  o.batch_size = r.train.batch_size;
  o.distill = r.distill;
  o.profile = r.profile;
  return o;
}

// One step's line: "step 20/30  loss 0.5941 (mse 0.4308 vb 0.0080 kd_eps 0.3106 kd_var 0.0000)  grad ...".
std::string step_line(const train::StepStats& s, int64_t max_steps, bool distill);

// Runs `run(on_step, should_stop)` (Trainer::run or TextTrainer::run) with the console around it. Throws
// ExitStatus after an interrupt, once the trainer has saved its checkpoint.
using TrainerRun =
    std::function<void(const std::function<void(const train::StepStats&)>&, const std::function<bool()>&)>;
void run_with_console(const TrainerRun& run, const TrainConsoleOptions& options, const c10::Device& device,
                      std::ostream& out);

}  // namespace lit::cli
