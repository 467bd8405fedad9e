// The training loop: one distillation step against the reference losses, exact resume, and the checks made
// before the first step.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "kernels/runtime/cuda_support.h"
#include "model/backbone/model_io.h"
#include "tests/train/train_test_util.h"
#include "tools/train/train_checkpoint.h"
#include "tools/train/trainer.h"
#include "weights/safetensors.h"

namespace lit::test {
namespace {

using test::error_of;

namespace fs = std::filesystem;
using train::Trainer;
using train::TrainOptions;

// The fixture teacher (dit_tiny.pt), student (lit_tiny.pt) and the batch of training_losses.safetensors.
struct FixtureStep {
  DiT teacher = load_model(fixture("dit/dit_tiny.pt")).model;
  DiT student = load_model(fixture("lit/lit_tiny.pt"), lit_options()).model;
  SafetensorsFile file = SafetensorsFile::open(fixture("diffusion/training_losses.safetensors"));
  at::Tensor x0 = file.tensor("x_start"), t = file.tensor("t").to(at::kLong), noise = file.tensor("noise");
  at::Tensor y = file.tensor("y").to(at::kLong);

  static ModelLoadOptions lit_options() {
    ModelLoadOptions o;
    o.config = tiny_lit_config();
    return o;
  }
};

// ---------------------------------------------------------------------------------------------------------
// One distillation step on the fixture models reproduces the reference's hybrid loss.
// ---------------------------------------------------------------------------------------------------------
TEST(Distillation, OneStepOnTheFixtureModelsGivesTheReferenceLoss) {
  FixtureStep f;
  DiT teacher = f.teacher, student = f.student;
  const SafetensorsFile& file = f.file;
  const at::Tensor x0 = f.x0, t = f.t, noise = f.noise, y = f.y;

  TrainOptions options;
  options.label_dropout = 0;
  options.batch_size = x0.size(0);
  Trainer trainer(student, teacher, train::make_synthetic_data({4, 8, 8}, 10, 16), options);
  {
    const train::StepLosses l = trainer.losses(x0, t, noise, y, y);
    EXPECT_LE(rel_error(l.total, file.tensor("kd.total")), 1e-5);
    EXPECT_LE(rel_error(l.kd_eps, file.tensor("kd.eps")), 1e-5);
    EXPECT_LE(rel_error(l.kd_var, file.tensor("kd.var")), 1e-5);
    EXPECT_LE(rel_error(l.mse, file.tensor("lit.mse")), 1e-5);
  }
  const auto before = state_dict(teacher);
  const at::Tensor teacher_w = before.at("blocks.0.attn.qkv.weight").clone();
  const at::Tensor student_q = state_dict(student).at("blocks.0.attn.q.weight").clone();
  const train::StepStats stats = trainer.step_on(x0, y, t, noise);
  EXPECT_NEAR(stats.total, file.tensor("kd.total").mean().item<double>(),
              1e-5 * std::abs(file.tensor("kd.total").mean().item<double>()));
  EXPECT_GT(stats.grad_norm, 0);
  EXPECT_EQ(stats.step, 1);
  // The student learned, the teacher did not.
  EXPECT_TRUE(at::equal(state_dict(teacher).at("blocks.0.attn.qkv.weight"), teacher_w));
  EXPECT_FALSE(at::equal(state_dict(student).at("blocks.0.attn.q.weight"), student_q));
}

TEST(Distillation, ZeroWeightsTurnTheKdTermsOff) {
  DiT teacher = fresh_model(tiny_dit_config(), 1);
  DiT student = fresh_model(tiny_lit_config(), 2);
  TrainOptions options;
  options.kd = {0.0, 0.0};
  Trainer trainer(student, teacher, train::make_synthetic_data({4, 8, 8}, 10, 16), options);
  const at::Tensor x0 = at::randn({3, 4, 8, 8}), t = at::tensor({0, 500, 999}, at::kLong), n = at::randn({3, 4, 8, 8});
  const at::Tensor y = at::tensor({1, 2, 3}, at::kLong);
  const train::StepLosses l = trainer.losses(x0, t, n, y, y);
  EXPECT_TRUE(at::equal(l.total, l.loss));
}

TEST(Distillation, Bf16AutocastStaysCloseToFloat32) {
  // The mixed-precision path on the CPU (the same code runs on CUDA): float32 master weights, bf16 forward.
  FixtureStep f;
  DiT teacher = f.teacher, student = f.student;
  const SafetensorsFile& file = f.file;
  const at::Tensor x0 = f.x0, t = f.t, noise = f.noise, y = f.y;
  TrainOptions options;
  options.bf16 = true;
  Trainer trainer(student, teacher, train::make_synthetic_data({4, 8, 8}, 10, 16), options);
  const train::StepLosses l = trainer.losses(x0, t, noise, y, y);
  EXPECT_EQ(l.total.scalar_type(), at::kFloat);
  EXPECT_LE(rel_error(l.total, file.tensor("kd.total")), 2e-2);
  const train::StepStats stats = trainer.step_on(x0, y, t, noise);
  EXPECT_TRUE(std::isfinite(stats.grad_norm) && stats.grad_norm > 0);
  EXPECT_EQ(state_dict(student).at("blocks.0.attn.q.weight").scalar_type(), at::kFloat);
}

// ---------------------------------------------------------------------------------------------------------
// Stop and resume continues exactly where the run stopped (CPU: bit for bit).
// ---------------------------------------------------------------------------------------------------------
TrainOptions resume_options(const std::string& dir) {
  TrainOptions o;
  o.batch_size = 4;
  o.lr = 1e-3;
  o.ema_decay = 0.9;
  o.warmup_steps = 3;
  o.grad_clip = 1.0;
  o.seed = 7;
  o.run_dir = dir;
  o.data_threads = 2;
  return o;
}

void expect_same_weights(const DiT& a, const DiT& b) {
  const StateDict sa = state_dict(a), sb = state_dict(b);
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [name, tensor] : sa) EXPECT_TRUE(at::equal(tensor, sb.at(name))) << name;
}

TEST(Resume, HalfStopResumeHalfEqualsStraightRun) {
  const int64_t n = 6;
  // 7 examples: the data order crosses an epoch boundary inside the run.
  auto data = train::make_synthetic_data({4, 8, 8}, 10, 7);
  TrainOptions straight_options = resume_options(fresh_temp_dir("straight"));
  straight_options.max_steps = n;
  Trainer straight(fresh_model(tiny_lit_config(), 3), nullptr, data, straight_options);
  straight.run();

  const std::string dir = fresh_temp_dir("stopped");
  {
    TrainOptions o = resume_options(dir);
    o.max_steps = n / 2;
    Trainer first(fresh_model(tiny_lit_config(), 3), nullptr, data, o);
    first.run();  // saves its final checkpoint
  }
  TrainOptions o = resume_options(dir);
  o.max_steps = n;
  Trainer second(fresh_model(tiny_lit_config(), 99), nullptr, data, o);  // other init: resume must replace it
  second.resume(dir);
  EXPECT_EQ(second.steps_done(), n / 2);
  second.run();
  EXPECT_EQ(second.steps_done(), n);
  expect_same_weights(second.model(), straight.model());
  expect_same_weights(second.ema(), straight.ema());
  // The saved model loads as a plain model file, with its config.
  const LoadedModel saved = load_model(train::find_checkpoint(dir) + "/ema.safetensors");
  EXPECT_EQ(saved.config, tiny_lit_config());
}

TEST(Resume, KeepsTheNewestCheckpoints) {
  const std::string dir = fresh_temp_dir("keep");
  TrainOptions o = resume_options(dir);
  o.max_steps = 5;
  o.checkpoint_every = 1;
  o.keep_checkpoints = 2;
  Trainer trainer(fresh_model(tiny_dit_config(), 4), nullptr, train::make_synthetic_data({4, 8, 8}, 10, 8), o);
  trainer.run();
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir + "/checkpoints")) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step-0000004", "step-0000005"}));
  EXPECT_TRUE(fs::exists(dir + "/log.jsonl"));
}

// After a resume the log holds every step once: the steps trained after the last checkpoint (and lost with
// the stopped run) are not repeated.
std::vector<int64_t> logged_steps(const std::string& dir) {
  std::ifstream in(dir + "/log.jsonl");
  std::vector<int64_t> steps;
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find("\"step\":");
    if (at != std::string::npos) steps.push_back(std::stoll(line.substr(at + 7)));
  }
  return steps;
}

TEST(Resume, LogContinuesWithoutRepeatingSteps) {
  const std::string dir = fresh_temp_dir("log");
  auto data = train::make_synthetic_data({4, 8, 8}, 10, 16);
  {
    TrainOptions o = resume_options(dir);
    o.max_steps = 5;
    o.checkpoint_every = 3;
    o.keep_checkpoints = 0;
    Trainer first(fresh_model(tiny_dit_config(), 4), nullptr, data, o);
    first.run();
  }
  // As if the run were killed after step 5 but before its final checkpoint: only step 3's is left.
  fs::remove_all(dir + "/checkpoints/step-0000005");
  EXPECT_EQ(logged_steps(dir), (std::vector<int64_t>{1, 2, 3, 4, 5}));
  TrainOptions o = resume_options(dir);
  o.max_steps = 6;
  Trainer second(fresh_model(tiny_dit_config(), 4), nullptr, data, o);
  second.resume(dir);
  EXPECT_EQ(second.steps_done(), 3);
  second.run();
  EXPECT_EQ(logged_steps(dir), (std::vector<int64_t>{1, 2, 3, 4, 5, 6}));
}

// A corrupted optimizer state is refused on resume (its CRC-32 is recorded in trainer.safetensors).
TEST(Resume, RefusesACorruptedOptimizerState) {
  const std::string dir = fresh_temp_dir("corrupt");
  auto data = train::make_synthetic_data({4, 8, 8}, 10, 16);
  TrainOptions o = resume_options(dir);
  o.max_steps = 2;
  {
    Trainer first(fresh_model(tiny_dit_config(), 4), nullptr, data, o);
    first.run();
  }
  const std::string path = train::find_checkpoint(dir) + "/optimizer.pt";
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fs::file_size(path) / 2));
    char c = 0;
    f.read(&c, 1);
    f.seekp(static_cast<std::streamoff>(fs::file_size(path) / 2));
    c = static_cast<char>(c ^ 0x5a);
    f.write(&c, 1);
  }
  Trainer second(fresh_model(tiny_dit_config(), 4), nullptr, data, o);
  const std::string error = error_of([&] { second.resume(dir); });
  EXPECT_NE(error.find("optimizer.pt: the optimizer state is corrupted"), std::string::npos) << error;
  // Garbage that is not an archive at all (and no recorded checksum to compare with) is refused too.
  {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << "not an optimizer state";
  }
  torch::optim::AdamW adam(std::vector<at::Tensor>{at::zeros({2}).requires_grad_()});
  const std::string garbage = error_of([&] { train::load_optimizer(path, adam); });
  EXPECT_NE(garbage.find("unreadable"), std::string::npos) << garbage;
}

// ---------------------------------------------------------------------------------------------------------
// Errors before the first step.
// ---------------------------------------------------------------------------------------------------------
TEST(TrainerSetup, RefusesWhatCannotWork) {
  auto data = train::make_synthetic_data({4, 8, 8}, 10, 8);
  ModelConfig deeper = tiny_lit_config();
  deeper.depth = 3;
  EXPECT_NE(
      error_of([&] { Trainer(fresh_model(deeper, 0), fresh_model(tiny_dit_config(), 0), data, {}); }).find("depth"),
      std::string::npos);
  ModelConfig wider = tiny_lit_config();
  wider.hidden_size = 128;
  EXPECT_NE(
      error_of([&] { Trainer(fresh_model(wider, 0), fresh_model(tiny_dit_config(), 0), data, {}); }).find("width"),
      std::string::npos);
  EXPECT_NE(error_of([&] {
              Trainer(fresh_model(tiny_dit_config(), 0), nullptr, train::make_synthetic_data({4, 8, 8}, 5, 8), {});
            }).find("classes"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              Trainer(fresh_model(tiny_dit_config(), 0), nullptr, train::make_synthetic_data({3, 8, 8}, 10, 8), {});
            }).find("4x8x8"),
            std::string::npos);
  TrainOptions o;
  o.run_dir = "/proc/lit-cannot-write-here";
  EXPECT_NE(error_of([&] { Trainer(fresh_model(tiny_dit_config(), 0), nullptr, data, o); }).find("run folder"),
            std::string::npos);
}

}  // namespace
}  // namespace lit::test

namespace lit::test {
namespace {

// On CUDA the batches and the noise come in page-locked memory and are copied without blocking; a copy that
// raced the next batch's preparation would feed the model other numbers than the CPU run's.
TEST(TrainerCuda, PinnedNonBlockingInputsTrainAsOnTheCpu) {
  if (!kernels::cuda_available()) GTEST_SKIP() << "no CUDA device";
  kernels::use_exact_float32();  // as lit train does: no TF32
  auto data = train::make_synthetic_data({4, 8, 8}, 10, 40);
  for (const bool pin : {true, false}) {
    TrainOptions o;
    o.batch_size = 8;
    o.max_steps = 6;
    o.lr = 1e-3;
    o.ema_decay = 0.9;
    o.pin_memory = pin;
    Trainer cpu(fresh_model(tiny_lit_config(), 3), nullptr, data, o);
    DiT model = fresh_model(tiny_lit_config(), 3);
    model->to(at::Device(at::kCUDA));
    Trainer gpu(model, nullptr, data, o);
    for (int64_t step = 0; step < o.max_steps; ++step) {
      const train::StepStats a = cpu.step(), b = gpu.step();
      EXPECT_NEAR(b.total, a.total, 1e-4 * std::abs(a.total) + 1e-6) << "pin " << pin << ", step " << step + 1;
      EXPECT_NEAR(b.grad_norm, a.grad_norm, 1e-4 * std::abs(a.grad_norm) + 1e-6)
          << "pin " << pin << ", step " << step + 1;
    }
  }
}

}  // namespace
}  // namespace lit::test
