// The training loop of `lit train` and `lit distill`: DiT's recipe (AdamW, EMA of the weights, the diffusion
// loss MSE + VB over uniformly drawn timesteps, label dropout for guidance) and LiT's hybrid distillation
// (the student's own loss plus lambda_eps * KD on the noise prediction and lambda_var * KD on the variance
// output of a frozen teacher run on the same x_t, t and true labels).
//
// Reproducibility: the timesteps, the noise and the label dropout of every step come from one CPU generator
// seeded by the run seed, and the data's randomness from per-example seeds (tools/train_data.h), so a run
// stopped and resumed from its checkpoint continues bit for bit (on the CPU) as if never stopped. Label
// dropout is drawn here rather than inside the model (which is kept in eval mode) for that reason and so
// that the teacher always sees the true label.
//
// Data parallelism (set_process_group, tools/train/distributed.h): the batch is the global batch, each rank
// trains its fixed slice of it (rank r: examples r*b .. r*b+b-1 of every step, b = batch / world size), and
// the timesteps, noise and label dropout are drawn for the whole global batch from the one generator every
// rank holds, so a step sees the same examples, noise and timesteps whatever the world size. The gradients
// are averaged over the ranks while the backward pass runs; only rank 0 writes logs, samples and checkpoints.
#pragma once

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/backbone/dit.h"
#include "sampler/distillation.h"
#include "sampler/gaussian_diffusion.h"
#include "tools/train/distributed.h"
#include "tools/train/ema.h"
#include "tools/train/step_random.h"
#include "tools/train/train_data.h"
#include "tools/train/training_run.h"

namespace lit::train {

struct SampleGridOptions {
  int64_t count = 16;         // images in the grid (labels 0, 1, 2, ... modulo the class count)
  int64_t steps = 50;         // DDPM respaced steps
  double guidance = 1.0;      // classifier-free guidance scale
  uint64_t seed = 0;          // fixed, so every grid of a run shows the same noise
  bool clip_denoised = true;  // pixel-space models
};

struct TrainOptions {
  int64_t batch_size = 256;  // the global batch: all ranks together (each trains batch_size / world_size)
  int64_t max_steps = 400000;
  double lr = 1e-4;
  double weight_decay = 0.0;
  int64_t warmup_steps = 0;                       // linear warm-up of the learning rate from 0
  LrSchedule lr_schedule = LrSchedule::Constant;  // after the warm-up (training_run.h)
  double min_lr = 0.0;                            // where a decaying schedule ends, at max_steps
  double grad_clip = 0.0;                         // clip the global gradient norm to this; 0 = off
  double ema_decay = 0.9999;
  double label_dropout = 0.1;  // probability of the null class in the student's input (needs a null row)
  DistillationWeights kd;      // used when there is a teacher; 0 turns a term off
  uint64_t seed = 0;
  int rank = 0, world_size = 1;
  int data_threads = 2;
  bool pin_memory = true;                 // on CUDA: batches and noise in page-locked memory, copied without blocking
  bool bf16 = false;                      // autocast to bfloat16 (float32 master weights), on the model's device
  bool activation_checkpointing = false;  // recompute each student block in the backward pass (less memory)

  std::string run_dir;           // where checkpoints, samples and log.jsonl go ("" = nowhere: tests)
  int64_t checkpoint_every = 0;  // steps; 0 = only at the end
  int keep_checkpoints = 3;      // the newest K are kept
  int64_t sample_every = 0;      // steps between sample grids; 0 = none
  SampleGridOptions grid;
};

// Per-sample loss terms of one batch, each (B,) float32.
struct StepLosses {
  at::Tensor total, loss, mse, vb, kd_eps, kd_var;  // kd_* are zeros without a teacher
};

struct StepStats {
  int64_t step = 0;  // steps done, this one included
  double total = 0, mse = 0, vb = 0, kd_eps = 0, kd_var = 0;
  double grad_norm = 0, lr = 0;
  double step_seconds = 0, images_per_second = 0;
  int64_t gpu_memory_bytes = 0;  // peak allocated on a CUDA device; 0 on the CPU
};

// The statistics of a step whose backward and update are done: the means of the losses and the gradient norm
// over the global batch (the ranks' means averaged through `group` when there is one), read back in one copy,
// and the device's peak memory. The caller fills in the step, the rate and the times.
StepStats gather_step_stats(const StepLosses& losses, const at::Tensor& grad_norm, ProcessGroup* group, int world_size,
                            at::Device device);
// One line of log.jsonl.
std::string step_stats_json(const StepStats& stats);

// What every rank of a data-parallel run must agree on, as JSON text: the named parts (models, data) and the
// options, the step and the data position (compared across ranks when a run starts).
std::string describe_run(const TrainOptions& options, const std::vector<std::pair<std::string, std::string>>& parts,
                         int64_t step, int64_t position);

// Throws lit::Error unless the student has the teacher's width, depth, patch, input size, channels, classes
// and variance output (only the attention may differ).
void check_teacher_student(const ModelConfig& teacher, const ModelConfig& student);

class Trainer {
 public:
  // student: the model to train (its parameters are trained in place); teacher: a frozen DiT or nullptr for
  // plain training. Checks everything it can before the first step and throws lit::Error naming the problem:
  // teacher and student of different shapes, data that does not fit the model, an unwritable run folder.
  Trainer(DiT student, DiT teacher, std::shared_ptr<TrainingData> data, TrainOptions options);
  ~Trainer();

  // The per-sample losses for a batch on the model's device: x_start (B, C, H, W), t (B,) int64 in
  // [0, 1000), noise like x_start, the student's labels (after any dropout) and the teacher's (true) labels.
  StepLosses losses(const at::Tensor& x_start, const at::Tensor& t, const at::Tensor& noise,
                    const at::Tensor& student_labels, const at::Tensor& teacher_labels);

  // One optimisation step on the next batch of the data stream.
  StepStats step();
  // One optimisation step on a given batch (for tests): no label dropout unless drop (B,) bool says so.
  StepStats step_on(const at::Tensor& x_start, const at::Tensor& labels, const at::Tensor& t, const at::Tensor& noise,
                    const at::Tensor& drop = {});

  // Trains until max_steps or until should_stop() returns true, with checkpoints and sample grids as the
  // options say, and a final checkpoint (rank 0 with a run folder). on_step sees every step's statistics.
  void run(const std::function<void(const StepStats&)>& on_step = {}, const std::function<bool()>& should_stop = {});

  // Writes <run_dir>/checkpoints/step-NNNNNNN/ atomically and prunes the oldest beyond keep_checkpoints.
  // Returns the folder. Throws lit::Error without a run folder.
  std::string save_checkpoint();
  // Restores model, EMA, optimizer, step, data position and generator from a checkpoint folder, or from the
  // newest one under <path>/checkpoints when path is a run folder.
  void resume(const std::string& path);

  // Writes a sample grid from the EMA weights to <run_dir>/samples/step-NNNNNNN.png; returns the path.
  std::string write_sample_grid();

  int64_t steps_done() const { return step_; }
  DiT& model() { return student_; }
  DiT& ema() { return ema_.model(); }
  const TrainOptions& options() const { return options_; }
  const TrainingData& data() const { return *data_; }

  // Turns latents into images in [-1, 1] for the sample grids (a VAE decoder); unset for pixel-space data
  // (then the samples are the images) -- with latent data and no decoder no grid is written.
  std::function<at::Tensor(const at::Tensor&)> decode_latents;
  bool latent_data = false;
  // Called with one line about what was written ("checkpoint ...", "samples ...").
  std::function<void(const std::string&)> on_event;
  // Where an all-reduce of the gradients goes for data parallelism (average over ranks).
  std::function<void(std::vector<at::Tensor>&)> gradient_reduce;

  // Makes this trainer one rank of a data-parallel run (collective: every rank calls it, before resume()).
  // The group's rank and size must be the options'. Broadcasts rank 0's weights (student, teacher, EMA) to
  // the others and averages every step's gradients over the group from then on.
  void set_process_group(std::shared_ptr<ProcessGroup> group);
  // What every rank must agree on (model, data, options, step): compared across ranks when run() starts.
  std::string run_description() const;

 private:
  void check_setup() const;
  void log_json(const StepStats& stats);
  int64_t local_batch() const { return options_.batch_size / options_.world_size; }

  DiT student_, teacher_;
  std::shared_ptr<TrainingData> data_;
  TrainOptions options_;
  GaussianDiffusion diffusion_;
  Ema ema_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<at::Tensor> trained_;  // the parameters that require grad, in model order
  StepRandom random_;                // timesteps, noise, label or caption dropout (see step_random.h)
  std::unique_ptr<BatchLoader> loader_;
  int64_t step_ = 0;
  int64_t position_ = 0;  // data stream position of the next batch
  StepLog log_;           // RUN/log.jsonl (rank 0 with a run folder)
  std::shared_ptr<ProcessGroup> group_;
  std::unique_ptr<GradientAverager> averager_;
};

}  // namespace lit::train
