// What the class trainer (trainer.h) and the text trainer (text_trainer.h) share around their steps: the run's
// log.jsonl, the loop with its checkpoints and its stop agreed over the ranks, and the checks made when a
// process group is attached or a checkpoint resumed.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "tools/train/distributed.h"

namespace lit::train {

// RUN/log.jsonl: one JSON object a line per step, appended and flushed as the run goes.
class StepLog {
 public:
  // Opens (appends to) run_dir/log.jsonl; lit::Error if it cannot be written.
  void open(const std::string& run_dir);
  bool is_open() const { return out_.is_open(); }
  void write(const std::string& json_line);  // nothing when not open
  // After a resume the log continues from the checkpoint's step: the lines of later steps (written before the
  // run was stopped, and about to be trained again) are dropped, so that every step appears once.
  void truncate_after(int64_t step);

 private:
  std::string path_;
  std::ofstream out_;
};

// The learning rate over a run: a linear warm-up from 0 over `warmup` steps, then constant (DiT's and PixArt's
// recipe), or decaying to min_lr at max_steps, linearly or along a half cosine.
enum class LrSchedule { Constant, Linear, Cosine };
const char* lr_schedule_name(LrSchedule schedule);      // "constant", "linear", "cosine"
LrSchedule parse_lr_schedule(const std::string& name);  // lit::Error naming --lr-schedule for anything else
// The rate of step `step` (0-based: the step about to be taken).
double scheduled_lr(LrSchedule schedule, double lr, double min_lr, int64_t warmup, int64_t max_steps, int64_t step);

struct StepLoop {
  int64_t max_steps = 0;
  int64_t checkpoint_every = 0;   // 0: only at the end
  bool writer = false;            // this process saves (rank 0, with a run folder)
  ProcessGroup* group = nullptr;  // when set, a stop asked of any rank stops every rank at the same step
  at::Device device = at::kCPU;   // where the group's stop flag lives
};

// Trains until max_steps or a stop: step() trains one step and returns the steps done; save() writes a
// checkpoint every checkpoint_every steps and at the end unless the last step was just saved; after(steps)
// runs after each step's checkpoint (sample grids). Only the writer saves.
void run_steps(const StepLoop& loop, int64_t steps_done, const std::function<int64_t()>& step,
               const std::function<void()>& save, const std::function<bool()>& should_stop,
               const std::function<void(int64_t)>& after = {});

// A process group's rank and size must be the options'; lit::Error otherwise.
void check_process_group(const ProcessGroup& group, int rank, int world_size);

// A module's parameters, then its buffers (what rank 0 broadcasts when a group is attached).
std::vector<at::Tensor> module_tensors(const torch::nn::Module& module);

// A checkpoint trained with another seed cannot continue this run; lit::Error naming `dir` and the flag.
void check_checkpoint_seed(const std::string& dir, uint64_t saved, uint64_t wanted);

}  // namespace lit::train
