#include "tools/train/trainer.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "kernels/runtime/torch_compat.h"
#include "model/backbone/model_io.h"
#include "sampler/generation.h"
#include "tools/train/optimizer_step.h"
#include "tools/train/train_checkpoint.h"
#include "weights/image_io.h"

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace fs = std::filesystem;

namespace lit::train {
namespace {

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

int64_t peak_gpu_memory(const at::Device& device) {
#ifdef LIT_WITH_CUDA
  if (device.is_cuda()) {
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    return stats.allocated_bytes[0].peak;  // StatType::AGGREGATE
  }
#endif
  (void)device;
  return 0;
}

// Images (N, C, H, W) in [-1, 1] -> one uint8 (rows*H, cols*W, 3) grid, gray repeated to RGB.
at::Tensor image_grid(const at::Tensor& images) {
  at::Tensor pixels = images_to_uint8(images);  // (N, H, W, C)
  if (pixels.size(3) == 1) pixels = pixels.repeat({1, 1, 1, 3});
  const int64_t n = pixels.size(0), h = pixels.size(1), w = pixels.size(2);
  const int64_t cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int64_t rows = (n + cols - 1) / cols;
  at::Tensor grid = at::zeros({rows * h, cols * w, 3}, at::kByte);
  for (int64_t i = 0; i < n; ++i) grid.narrow(0, (i / cols) * h, h).narrow(1, (i % cols) * w, w).copy_(pixels[i]);
  return grid;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------------------
void check_teacher_student(const ModelConfig& t, const ModelConfig& s) {
  auto differ = [&](const char* what, double a, double b) {
    if (a != b)
      throw Error(std::string("distill: the teacher and the student differ in ") + what + " (" +
                  std::to_string(static_cast<int64_t>(a)) + " vs " + std::to_string(static_cast<int64_t>(b)) +
                  "): the student must have the teacher's shape apart from its attention");
  };
  differ("width", t.hidden_size, s.hidden_size);
  differ("depth", t.depth, s.depth);
  differ("patch size", t.patch_size, s.patch_size);
  differ("input size", t.input_size, s.input_size);
  differ("channels", t.in_channels, s.in_channels);
  differ("classes", t.num_classes, s.num_classes);
  differ("learned sigma", t.learn_sigma, s.learn_sigma);
}

Trainer::Trainer(DiT student, DiT teacher, std::shared_ptr<TrainingData> data, TrainOptions options)
    : student_(std::move(student)),
      teacher_(std::move(teacher)),
      data_(std::move(data)),
      options_(std::move(options)),
      diffusion_(GaussianDiffusion::create("")),
      ema_(student_),
      random_(options_.seed, diffusion_.num_timesteps(), data_->example_shape(), options_.batch_size,
              options_.label_dropout, options_.rank, options_.world_size,
              options_.pin_memory && student_->device().is_cuda()) {
  check_setup();
  // The model stays in eval mode: label dropout is drawn here (see the header).
  student_->eval();
  student_->set_activation_checkpointing(options_.activation_checkpointing);
  for (const auto& p : student_->parameters())
    if (p.requires_grad()) trained_.push_back(p);
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      trained_, torch::optim::AdamWOptions(options_.lr).weight_decay(options_.weight_decay));
  if (teacher_) {
    teacher_->eval();
    for (auto& p : teacher_->parameters()) p.set_requires_grad(false);
  }
  if (!options_.run_dir.empty() && options_.rank == 0) {
    log_.open(options_.run_dir);
  }
}

Trainer::~Trainer() = default;

void Trainer::check_setup() const {
  const ModelConfig& s = student_->config();
  if (teacher_) check_teacher_student(teacher_->config(), s);
  const auto shape = data_->example_shape();
  if (shape != std::vector<int64_t>{s.in_channels, s.input_size, s.input_size})
    throw Error("train: the data's examples are " + shape_text(shape) + " but the model takes " +
                shape_text({s.in_channels, s.input_size, s.input_size}) + " (" + data_->description() + ")");
  if (data_->num_classes() != s.num_classes)
    throw Error("train: the data has " + std::to_string(data_->num_classes()) + " classes but the model " +
                std::to_string(s.num_classes) + " (" + data_->description() + ")");
  if (options_.label_dropout > 0 && !s.has_null_class())
    throw Error("train: label dropout needs a model with a null class (class_dropout_prob > 0)");
  if (options_.batch_size < 1 || options_.max_steps < 0 || options_.lr <= 0 || options_.ema_decay < 0 ||
      options_.ema_decay > 1 || options_.kd.lambda_eps < 0 || options_.kd.lambda_var < 0)
    throw Error("train: batch size, steps, learning rate, EMA decay and KD weights must be positive");
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size)
    throw Error("train: rank " + std::to_string(options_.rank) + " does not fit world size " +
                std::to_string(options_.world_size));
  if (options_.batch_size % options_.world_size != 0)
    throw Error("train: the batch of " + std::to_string(options_.batch_size) + " (the global batch) does not split " +
                "evenly over " + std::to_string(options_.world_size) + " ranks");
  if (!options_.run_dir.empty() && options_.rank == 0) {
    std::error_code ec;
    fs::create_directories(options_.run_dir, ec);
    const fs::path probe = fs::path(options_.run_dir) / ".write-test";
    std::ofstream f(probe);
    if (ec || !f) throw Error(options_.run_dir + ": the run folder cannot be created or written");
    f.close();
    fs::remove(probe, ec);
  }
}

// ---------------------------------------------------------------------------------------------------------
// One step
// ---------------------------------------------------------------------------------------------------------
StepLosses Trainer::losses(const at::Tensor& x_start, const at::Tensor& t, const at::Tensor& noise,
                           const at::Tensor& student_labels, const at::Tensor& teacher_labels) {
  const at::Device device = student_->device();
  std::optional<compat::AutocastGuard> autocast;
  if (options_.bf16) autocast.emplace(device.type(), at::kBFloat16);
  // The losses are taken in float32 whatever precision the forward ran in.
  const ModelFn student = [&](const at::Tensor& x, const at::Tensor& tt) {
    return student_->forward(x, tt, student_labels).to(at::kFloat);
  };
  StepLosses out;
  // With both KD weights 0 the teacher's predictions would be multiplied by 0: it is not run at all.
  if (teacher_ && (options_.kd.lambda_eps != 0 || options_.kd.lambda_var != 0)) {
    const ModelFn teacher = [&](const at::Tensor& x, const at::Tensor& tt) {
      return teacher_->forward(x, tt, teacher_labels.to(device)).to(at::kFloat);
    };
    const DistillationLosses d =
        hybrid_distillation_losses(diffusion_, student, teacher, x_start, t, noise, options_.kd);
    out = {d.total, d.student.loss, d.student.mse, d.student.vb, d.eps, d.var};
  } else {
    const TrainingLosses l = diffusion_.training_losses(student, x_start, t, noise);
    out = {l.loss, l.loss, l.mse, l.vb, at::zeros_like(l.loss), at::zeros_like(l.loss)};
  }
  return out;
}

StepStats Trainer::step_on(const at::Tensor& x_start, const at::Tensor& labels, const at::Tensor& t,
                           const at::Tensor& noise, const at::Tensor& drop) {
  const auto start = std::chrono::steady_clock::now();
  const at::Device device = student_->device();
  // Non-blocking where the loader and StepRandom pinned the host memory (training on CUDA): the copies overlap.
  const at::Tensor x = x_start.to(device, at::kFloat, /*non_blocking=*/true), tt = t.to(device),
                   n = noise.to(device, at::kFloat, /*non_blocking=*/true);
  const at::Tensor y = labels.to(device, at::kLong);
  const at::Tensor y_student =
      drop.defined() ? at::where(drop.to(device), at::full_like(y, student_->config().num_classes), y) : y;

  const double lr = scheduled_lr(options_.lr_schedule, options_.lr, options_.min_lr, options_.warmup_steps,
                                 options_.max_steps, step_);
  for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  optimizer_->zero_grad();
  const StepLosses l = losses(x, tt, n, y_student, y);
  if (averager_) averager_->begin();
  l.total.mean().backward();
  if (averager_) averager_->finish();  // every rank now holds the gradient of the global batch's mean loss

  std::vector<at::Tensor> grads;
  for (auto& p : trained_)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (gradient_reduce) gradient_reduce(grads);
  // Clipping and AdamW as multi-tensor kernels; the norm is read back with the losses, in one copy.
  const at::Tensor grad_norm = clip_grad_norm(grads, options_.grad_clip);
  adamw_step(*optimizer_);
  ema_.update(student_, options_.ema_decay);
  ++step_;

  StepStats s = gather_step_stats(l, grad_norm, group_.get(), options_.world_size, device);
  s.step = step_;
  s.lr = lr;
  s.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  s.images_per_second = static_cast<double>(x.size(0) * options_.world_size) / std::max(s.step_seconds, 1e-9);
  return s;
}

StepStats Trainer::step() {
  const auto start = std::chrono::steady_clock::now();
  if (!loader_) {
    LoaderOptions loading;
    loading.threads = options_.data_threads;
    loading.pin_memory = options_.pin_memory && student_->device().is_cuda();
    loader_ = std::make_unique<BatchLoader>(data_, local_batch(), options_.seed, position_, options_.rank,
                                            options_.world_size, loading);
  }
  const Batch batch = loader_->next();
  position_ = loader_->position();
  const StepDraw d = random_.next();
  StepStats s = step_on(batch.x, batch.labels, d.t, d.noise, d.drop);
  s.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  s.images_per_second = static_cast<double>(options_.batch_size) / std::max(s.step_seconds, 1e-9);
  log_json(s);
  return s;
}

void Trainer::log_json(const StepStats& s) {
  log_.write(step_stats_json(s));
}

// ---------------------------------------------------------------------------------------------------------
// The loop
// ---------------------------------------------------------------------------------------------------------
void Trainer::run(const std::function<void(const StepStats&)>& on_step, const std::function<bool()>& should_stop) {
  const bool writer = !options_.run_dir.empty() && options_.rank == 0;
  if (group_) check_same_on_all_ranks(*group_, "training run", run_description(), student_->device());
  const StepLoop loop{options_.max_steps, options_.checkpoint_every, writer, group_.get(), student_->device()};
  const auto one_step = [&] {
    const StepStats s = step();
    if (on_step) on_step(s);
    return step_;
  };
  const auto samples = [&](int64_t steps) {
    if (writer && options_.sample_every > 0 && steps % options_.sample_every == 0) write_sample_grid();
  };
  run_steps(
      loop, step_, one_step, [&] { save_checkpoint(); }, should_stop, samples);
}

// ---------------------------------------------------------------------------------------------------------
// Data parallelism
// ---------------------------------------------------------------------------------------------------------
void Trainer::set_process_group(std::shared_ptr<ProcessGroup> group) {
  if (!group) return;
  check_process_group(*group, options_.rank, options_.world_size);
  group_ = std::move(group);
  at::NoGradGuard no_grad;
  // Rank 0's weights everywhere (buffers too); the EMA starts from them, as it does on one process.
  std::vector<at::Tensor> tensors = module_tensors(*student_);
  group_->broadcast(tensors, 0);
  if (teacher_) {
    std::vector<at::Tensor> t = module_tensors(*teacher_);
    group_->broadcast(t, 0);
  }
  ema_.copy_from(student_);
  averager_ = std::make_unique<GradientAverager>(group_, trained_);
}

StepStats gather_step_stats(const StepLosses& l, const at::Tensor& grad_norm, ProcessGroup* group, int world_size,
                            at::Device device) {
  // The losses of the global batch: the ranks' means averaged (equal slices).
  at::Tensor means =
      at::stack({l.total.mean(), l.mse.mean(), l.vb.mean(), l.kd_eps.mean(), l.kd_var.mean(), grad_norm.to(device)})
          .detach()
          .to(at::kFloat);
  if (group) {
    group->all_reduce_sum(means);
    means.div_(world_size);
  }
  means = means.to(at::kCPU, at::kDouble);
  const double* m = means.data_ptr<double>();
  StepStats s;
  s.total = m[0];
  s.mse = m[1];
  s.vb = m[2];
  s.kd_eps = m[3];
  s.kd_var = m[4];
  s.grad_norm = m[5];  // equal on every rank (the gradients are averaged first)
  s.gpu_memory_bytes = peak_gpu_memory(device);
  return s;
}

std::string step_stats_json(const StepStats& s) {
  const nlohmann::json j = {{"step", s.step},
                            {"loss", s.total},
                            {"mse", s.mse},
                            {"vb", s.vb},
                            {"kd_eps", s.kd_eps},
                            {"kd_var", s.kd_var},
                            {"grad_norm", s.grad_norm},
                            {"lr", s.lr},
                            {"step_s", s.step_seconds},
                            {"images_per_s", s.images_per_second},
                            {"gpu_mem_bytes", s.gpu_memory_bytes}};
  return j.dump();
}

std::string describe_run(const TrainOptions& o, const std::vector<std::pair<std::string, std::string>>& parts,
                         int64_t step, int64_t position) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, value] : parts) j[key] = value;
  j.update({{"batch", o.batch_size},
            {"world_size", o.world_size},
            {"max_steps", o.max_steps},
            {"lr", o.lr},
            {"weight_decay", o.weight_decay},
            {"warmup", o.warmup_steps},
            {"lr_schedule", lr_schedule_name(o.lr_schedule)},
            {"min_lr", o.min_lr},
            {"grad_clip", o.grad_clip},
            {"ema_decay", o.ema_decay},
            {"label_dropout", o.label_dropout},
            {"lambda_eps", o.kd.lambda_eps},
            {"lambda_var", o.kd.lambda_var},
            {"seed", o.seed},
            {"bf16", o.bf16},
            {"step", step},
            {"position", position}});
  return j.dump();
}

std::string Trainer::run_description() const {
  return describe_run(options_,
                      {{"student", student_->config().summary()},
                       {"teacher", teacher_ ? teacher_->config().summary() : std::string()},
                       {"data", data_->description()},
                       {"data_size", std::to_string(data_->size())}},
                      step_, position_);
}

// ---------------------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------------------
std::string Trainer::save_checkpoint() {
  if (options_.run_dir.empty()) throw Error("train: no run folder to save a checkpoint in");
  const std::string checkpoints = (fs::path(options_.run_dir) / "checkpoints").string();
  std::map<std::string, std::string> meta = {{"train_step", std::to_string(step_)}};
  if (const std::vector<std::string> names = data_->class_names(); !names.empty())
    meta["class_names"] = nlohmann::json(names).dump();
  const std::string dir = write_checkpoint_folder(checkpoints, step_, [&](const std::string& tmp) {
    save_model(tmp + "/model.safetensors", student_, std::nullopt, meta);
    save_model(tmp + "/ema.safetensors", ema_.model(), std::nullopt, meta);
    const uint32_t optimizer_crc = save_optimizer(tmp + "/optimizer.pt", *optimizer_);
    save_trainer_state(tmp + "/trainer.safetensors", {step_, position_, options_.seed, random_.state(), optimizer_crc});
  });
  prune_checkpoints(checkpoints, options_.keep_checkpoints);
  if (on_event) on_event("checkpoint " + dir);
  return dir;
}

void Trainer::resume(const std::string& path) {
  const std::string dir = find_checkpoint(path);
  const TrainerState state = load_trainer_state(dir + "/trainer.safetensors");
  check_checkpoint_seed(dir, state.seed, options_.seed);
  for (const char* name : {"model", "ema"}) {
    const LoadedModel loaded = load_model(dir + "/" + name + ".safetensors");
    if (loaded.config != student_->config())
      throw Error(dir + "/" + name + ".safetensors: its config (" + loaded.config.summary() + ") is not the model's (" +
                  student_->config().summary() + ")");
    DiT& target = std::string(name) == "model" ? student_ : ema_.model();
    at::NoGradGuard no_grad;
    load_state_dict(target, state_dict(loaded.model));
  }
  load_optimizer(dir + "/optimizer.pt", *optimizer_, state.optimizer_crc);
  random_.set_state(state.generator_state);
  step_ = state.step;
  position_ = state.position;
  loader_.reset();
  log_.truncate_after(step_);
  if (on_event) on_event("resumed from " + dir + " at step " + std::to_string(step_));
}

// ---------------------------------------------------------------------------------------------------------
// Sample grids
// ---------------------------------------------------------------------------------------------------------
std::string Trainer::write_sample_grid() {
  if (options_.run_dir.empty() || (latent_data && !decode_latents)) return "";
  const ModelConfig& c = ema_.model()->config();
  const int64_t n = options_.grid.count;
  const at::Tensor labels = at::arange(n, at::kLong).remainder(c.num_classes);
  SamplingSettings settings;
  settings.sampler = "ddpm";
  settings.steps = options_.grid.steps;
  settings.guidance.scale = c.has_null_class() ? options_.grid.guidance : 1.0;
  settings.guidance.null_class = c.num_classes;
  settings.learn_sigma = c.learn_sigma;
  settings.clip_denoised = !latent_data && options_.grid.clip_denoised;
  DiT& ema = ema_.model();
  const ClassConditionalFn forward = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y) {
    std::optional<compat::AutocastGuard> autocast;
    if (options_.bf16) autocast.emplace(ema->device().type(), at::kBFloat16);
    return ema->forward(x, t, y).to(at::kFloat);
  };
  at::Tensor samples;
  {
    at::NoGradGuard no_grad;
    samples = sample_batch(forward, {c.in_channels, c.input_size, c.input_size}, labels, options_.grid.seed, 0,
                           settings, ema->device());
    if (decode_latents) samples = decode_latents(samples);
  }
  const fs::path dir = fs::path(options_.run_dir) / "samples";
  std::error_code ec;
  fs::create_directories(dir, ec);
  const std::string path = (dir / (checkpoint_folder_name(step_) + ".png")).string();
  write_image(path, image_grid(samples.to(at::kCPU)));
  if (on_event) on_event("samples " + path);
  return path;
}

}  // namespace lit::train
