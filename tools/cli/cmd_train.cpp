// lit train / lit distill: parse, build the models and the data, run the trainer, print progress.
//
//   lit train   --preset LiT-S/2 | --config FILE | --model FILE   --data SPEC  -o RUN
//   lit distill --teacher FILE | --teacher-preset NAME  [--student-preset NAME | --student-config FILE]
//               [--init inherit|scratch|FILE]  --data SPEC  -o RUN
//
// SPEC: "fashion-mnist" (or fashion-mnist:DIR), a latents folder written by `lit extract-latents`, or an
// image folder with one sub-folder per class; --synthetic-data trains on random tensors (speed runs).
//
// Data parallel: launched by torchrun (or srun/mpirun setting the same variables), every process reads
// RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, takes cuda:LOCAL_RANK for --device cuda, and joins
// a c10d process group (NCCL on CUDA, Gloo on the CPU); --batch-size is the global batch.
//   torchrun --nproc-per-node 2 --no-python lit train ...
#include <chrono>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>

#include "common/error.h"
#include "kernels/execution.h"
#include "model/backbone/model_io.h"
#include "model/vae/vae.h"
#include "tools/cli/commands.h"
#include "tools/cli/train_console.h"
#include "tools/cli/train_text.h"
#include "tools/train/distributed.h"
#include "tools/train/fashion_mnist.h"
#include "tools/train/image_folder.h"
#include "tools/train/latent_dataset.h"
#include "tools/train/trainer.h"

namespace lit::cli {
namespace {

struct TrainCommandOptions {
  bool distill = false;
  // models
  std::string model, preset, config;                                    // train
  std::string teacher, teacher_preset, student_preset, student_config;  // distill
  std::string init = "inherit";
  std::string text_encoder_config, tokenizer;  // text models: a T5 encoder trained jointly (train only)
  std::string text_encoder_init;               // ... loaded from this T5 folder rather than new
  int64_t student_heads = 0;
  int64_t image_size = 256;
  int64_t num_classes = 0;  // presets: override the class count (0 = the data's)
  kernels::AttentionImpl attention = kernels::AttentionImpl::Auto;  // --attention, for student and teacher
  // data
  std::string data;
  bool synthetic = false;
  int64_t data_limit = 0;
  std::string vae;  // decodes the sample grids of latent models
  // run
  std::string run_dir, resume, device = "cpu";
  std::string dist_backend = "auto";  // auto: nccl on CUDA, gloo on the CPU
  double dist_timeout = 600;          // seconds
  bool bf16 = false;
  int64_t log_every = 10;
  ProfileOptions profile;
  train::TrainOptions train;
};

std::shared_ptr<train::TrainingData> open_data(const TrainCommandOptions& opt, const ModelConfig& model,
                                               double* scaling_note) {
  if (opt.synthetic)
    return train::make_synthetic_data({model.in_channels, model.input_size, model.input_size}, model.num_classes);
  if (opt.data.empty()) throw Error("no training data: pass --data (fashion-mnist, a folder) or --synthetic-data");
  std::shared_ptr<train::TrainingData> data;
  if (opt.data == "fashion-mnist" || opt.data.rfind("fashion-mnist:", 0) == 0) {
    const std::string dir = opt.data.size() > 14 ? opt.data.substr(14) : train::default_fashion_mnist_dir();
    data = train::load_fashion_mnist(dir, "train");
  } else if (train::is_latent_folder(opt.data)) {
    auto latents = train::open_latent_folder(opt.data);
    *scaling_note = latents->scaling_factor();
    data = latents;
  } else if (std::filesystem::is_directory(opt.data)) {
    if (model.in_channels != 3)
      throw Error(opt.data + ": an image folder trains a pixel-space model of 3 channels; this model takes " +
                  std::to_string(model.in_channels) + " (latents): run `lit extract-latents` first");
    data = train::open_image_folder(opt.data, model.input_size);
  } else {
    throw Error(opt.data + ": no such data (expected fashion-mnist, a latents folder or an image folder)");
  }
  return train::make_subset(data, opt.data_limit);
}

// The class count of a preset model: the data's, unless given.
ModelConfig with_classes(ModelConfig c, const TrainCommandOptions& opt, int64_t data_classes) {
  c.num_classes = opt.num_classes > 0 ? opt.num_classes : data_classes > 0 ? data_classes : c.num_classes;
  return c;
}

ModelConfig preset_or_file(const std::string& preset, const std::string& file, const TrainCommandOptions& opt) {
  return preset.empty() ? ModelConfig::from_json_file(file) : ModelConfig::preset(preset, opt.image_size);
}

// PixArt-Σ / LiT-T2I models train on captions (tools/cli/train_text.h).
bool run_text_model_training(const TrainCommandOptions& opt) {
  if (!is_text_model_request(opt.distill, opt.model, opt.preset, opt.config, opt.teacher)) {
    if (!opt.text_encoder_config.empty() || !opt.tokenizer.empty() || !opt.text_encoder_init.empty())
      throw Error(
          "--text-encoder-config, --text-encoder-init and --tokenizer train a text encoder with a text-to-image "
          "model (--config PIXART.json, a PixArt preset or checkpoint), not with a class-conditional DiT/LiT");
    return false;
  }
  if (opt.synthetic || opt.data_limit > 0 || !opt.vae.empty() || !opt.teacher_preset.empty() ||
      !opt.student_preset.empty())
    throw Error(
        "text models: --synthetic-data, --data-limit, --vae, --teacher-preset and --student-preset are not "
        "supported (train on a folder from lit extract-latents --text-encoder)");
  TextTrainRequest r;
  r.distill = opt.distill;
  r.model = opt.model;
  r.preset = opt.preset;
  r.config = opt.config;
  r.teacher = opt.teacher;
  r.student_config = opt.student_config;
  r.init = opt.init;
  r.student_heads = opt.student_heads;
  r.text_encoder_config = opt.text_encoder_config;
  r.tokenizer = opt.tokenizer;
  r.text_encoder_init = opt.text_encoder_init;
  r.image_size = opt.image_size;
  r.data = opt.data;
  r.run_dir = opt.run_dir;
  r.resume = opt.resume;
  r.device = opt.device;
  r.dist_backend = opt.dist_backend;
  r.dist_timeout = opt.dist_timeout;
  r.bf16 = opt.bf16;
  r.log_every = opt.log_every;
  r.profile = opt.profile;
  r.train = opt.train;
  run_text_training(r);
  return true;
}

void run_training(TrainCommandOptions& opt) {
  if (run_text_model_training(opt)) return;
  // Data parallel when a launcher set WORLD_SIZE (world size 1 included: the same code path).
  const train::DistEnvironment env = train::read_dist_environment();
  std::shared_ptr<train::ProcessGroup> group;
  std::string device_name = opt.device;
  if (env.present) {
    opt.train.rank = env.rank;
    opt.train.world_size = env.world_size;
    if (device_name == "cuda") device_name = "cuda:" + std::to_string(env.local_rank);  // one device per process
    const bool cuda = at::Device(device_name).is_cuda();
    const std::string backend = opt.dist_backend == "auto" ? (cuda ? "nccl" : "gloo") : opt.dist_backend;
    if (opt.dist_timeout <= 0) throw Error("--dist-timeout must be positive");
    group = train::ProcessGroup::create(env, backend,
                                        std::chrono::milliseconds(static_cast<int64_t>(opt.dist_timeout * 1000)));
  }
  const bool chatty = opt.train.rank == 0;  // logs, sample grids and checkpoints come from rank 0
  std::ostringstream quiet;
  std::ostream& out = chatty ? std::cout : quiet;
  const at::Device device(device_name);
  // --seed seeds the weights' initialisation too (two runs from scratch start equal); the ranks get rank
  // 0's weights anyway (set_process_group broadcasts them).
  at::manual_seed(opt.train.seed);
  ModelLoadOptions load;
  load.device = device;
  load.dtype = at::kFloat;  // float32 master weights; --bf16 autocasts the forward

  // The data first when a preset needs its class count; a latent model's channels are fixed by the preset.
  DiT teacher{nullptr}, student{nullptr};
  std::string student_source;
  double scaling = 0;
  std::shared_ptr<train::TrainingData> data;
  auto data_classes = [&](const ModelConfig& shape_model) {
    if (!data) data = open_data(opt, shape_model, &scaling);
    return data->num_classes();
  };
  if (opt.distill) {
    if (!opt.teacher.empty()) {
      teacher = load_model(opt.teacher, load).model;
    } else if (!opt.teacher_preset.empty()) {
      ModelConfig c = ModelConfig::preset(opt.teacher_preset, opt.image_size);
      c = with_classes(c, opt, opt.synthetic ? 0 : data_classes(c));
      teacher = DiT(c, at::TensorOptions().device(device));
    } else {
      throw Error("distill: give the teacher (--teacher FILE or --teacher-preset NAME)");
    }
    // The student: a preset or config when given, else the teacher's LiT counterpart; its class count is the
    // teacher's (a preset says 1000).
    ModelConfig sc = opt.student_preset.empty() && opt.student_config.empty()
                         ? lit_config_from_dit(teacher->config(), opt.student_heads)
                         : preset_or_file(opt.student_preset, opt.student_config, opt);
    sc.num_classes = teacher->config().num_classes;
    train::check_teacher_student(teacher->config(), sc);
    if (opt.init == "inherit") {
      student = DiT(sc, at::TensorOptions().device(device));
      const LoadReport r = inherit_from_dit(student, state_dict(teacher));
      student_source = "inherited from the teacher: " + r.to_string();
    } else if (opt.init == "scratch") {
      student = DiT(sc, at::TensorOptions().device(device));
      student_source = "initialised from scratch";
    } else {
      ModelLoadOptions lo = load;
      lo.config = sc;
      student = load_model(opt.init, lo).model;
      student_source = "loaded from " + opt.init;
    }
  } else {
    if (!opt.model.empty()) {
      student = load_model(opt.model, load).model;
      student_source = "loaded from " + opt.model;
    } else if (!opt.preset.empty() || !opt.config.empty()) {
      ModelConfig c = preset_or_file(opt.preset, opt.config, opt);
      if (!opt.preset.empty()) c = with_classes(c, opt, opt.synthetic ? 0 : data_classes(c));
      student = DiT(c, at::TensorOptions().device(device));
      student_source = "initialised from scratch";
    } else {
      throw Error("train: give the model (--preset NAME, --config FILE or --model FILE)");
    }
  }
  if (!data) data = open_data(opt, student->config(), &scaling);

  opt.train.run_dir = opt.run_dir;
  opt.train.bf16 = opt.bf16;
  kernels::ExecutionOptions execution;
  execution.attention = opt.attention;
  student->set_execution(execution);
  if (teacher) teacher->set_execution(execution);
  train::Trainer trainer(student, teacher, data, opt.train);
  trainer.on_event = [&out](const std::string& line) { out << line << std::endl; };
  trainer.set_process_group(group);
  trainer.latent_data = student->config().in_channels != 1 && student->config().in_channels != 3;
  std::optional<AutoencoderKL> vae;
  if (!opt.vae.empty()) {
    VaeLoadOptions vo;
    vo.device = device;
    vae.emplace(load_vae(opt.vae, vo));
    check_latent_channels(*vae, student->config().in_channels);
    trainer.decode_latents = [&vae](const at::Tensor& z) { return vae->decode(vae->from_model_space(z)); };
  }
  if (teacher) out << "teacher " << teacher->config().summary() << "\n";
  out << "student " << student->config().summary() << ", " << student->num_parameters() << " parameters, "
      << student_source << "\n";
  out << "data    " << data->description() << "\n";
  out << "run     " << (opt.run_dir.empty() ? std::string("(nothing saved: no -o)") : opt.run_dir) << ", "
      << device.str() << (opt.bf16 ? ", bf16 autocast" : ", float32")
      << (opt.train.activation_checkpointing ? ", activation checkpointing" : "") << ", batch " << opt.train.batch_size
      << ", " << opt.train.max_steps << " steps\n";
  if (group)
    out << "ranks   " << group->world_size() << " (" << group->backend() << ", "
        << opt.train.batch_size / group->world_size() << " images per rank and step, timeout " << opt.dist_timeout
        << " s)\n";
  if (!opt.resume.empty()) trainer.resume(opt.resume);

  run_with_console([&](const auto& on_step, const auto& should_stop) { trainer.run(on_step, should_stop); },
                   console_options(opt, chatty), device, out);
}

void add_common_options(CLI::App* cmd, TrainCommandOptions& opt) {
  auto& t = opt.train;
  cmd->add_option("--data", opt.data, "fashion-mnist[:DIR], a latents folder (lit extract-latents) or an image folder");
  cmd->add_flag("--synthetic-data", opt.synthetic, "random data of the model's shape (speed runs)");
  cmd->add_option("--data-limit", opt.data_limit, "use only the first N examples");
  cmd->add_option("-o,--run-dir", opt.run_dir, "folder for checkpoints, samples and log.jsonl (none: save nothing)");
  cmd->add_option("--resume", opt.resume, "continue from a run folder or a checkpoint folder");
  cmd->add_option("--image-size", opt.image_size, "image size in pixels for presets (latents are 1/8)")
      ->capture_default_str();
  cmd->add_option("--num-classes", opt.num_classes, "class count of a preset model (default: the data's)");
  cmd->add_option("--device", opt.device, "cpu, cuda, cuda:1, ...")->capture_default_str();
  cmd->add_flag("--bf16", opt.bf16, "bfloat16 autocast with float32 master weights");
  add_attention_option(cmd, &opt.attention);
  cmd->add_flag("--activation-checkpointing", opt.train.activation_checkpointing,
                "recompute each block in the backward pass: less memory, a second forward per block");
  cmd->add_option("--batch-size", t.batch_size, "images per step, all ranks together (each rank trains batch/ranks)")
      ->capture_default_str();
  cmd->add_option("--max-steps", t.max_steps, "train until this step")->capture_default_str();
  cmd->add_option("--lr", t.lr, "AdamW learning rate")->capture_default_str();
  cmd->add_option("--weight-decay", t.weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--warmup", t.warmup_steps, "linear learning-rate warm-up steps")->capture_default_str();
  cmd->add_option_function<std::string>(
         "--lr-schedule", [&t](const std::string& n) { t.lr_schedule = train::parse_lr_schedule(n); },
         "after the warm-up: constant (default), or decaying to --min-lr at --max-steps: linear or cosine")
      ->check(CLI::IsMember({"constant", "linear", "cosine"}));
  cmd->add_option("--min-lr", t.min_lr, "where a linear or cosine schedule ends")->capture_default_str();
  cmd->add_option("--grad-clip", t.grad_clip, "clip the gradient norm (0: off)")->capture_default_str();
  cmd->add_option("--ema-decay", t.ema_decay, "EMA decay per step")->capture_default_str();
  cmd->add_option("--label-dropout", t.label_dropout, "probability of the null label (guidance)")
      ->capture_default_str();
  cmd->add_option("--seed", t.seed, "seed of the weights' initialisation, data order, noise and timesteps")
      ->capture_default_str();
  cmd->add_option("--data-threads", t.data_threads, "threads decoding the data")->capture_default_str();
  cmd->add_flag_callback(
      "--no-pin-memory", [&t] { t.pin_memory = false; },
      "on CUDA, stage batches and noise in pageable memory and copy them blocking (default: page-locked, "
      "copied while the previous step runs)");
  cmd->add_option("--dist-backend", opt.dist_backend,
                  "under torchrun: auto (nccl on CUDA, gloo on the CPU), nccl or gloo")
      ->capture_default_str();
  cmd->add_option("--dist-timeout", opt.dist_timeout,
                  "under torchrun: seconds before a rank that waits for a dead or stuck one gives up")
      ->capture_default_str();
  cmd->add_option("--checkpoint-every", t.checkpoint_every, "steps between checkpoints (0: only at the end)")
      ->capture_default_str();
  cmd->add_option("--keep", t.keep_checkpoints, "checkpoints kept")->capture_default_str();
  cmd->add_option("--sample-every", t.sample_every, "steps between EMA sample grids (0: none)")->capture_default_str();
  cmd->add_option("--sample-count", t.grid.count, "images per sample grid")->capture_default_str();
  cmd->add_option("--sample-steps", t.grid.steps, "DDPM steps of the sample grids")->capture_default_str();
  cmd->add_option("--sample-guidance", t.grid.guidance, "guidance scale of the sample grids")->capture_default_str();
  cmd->add_option("--vae", opt.vae, "VAE to decode the sample grids of a latent model");
  cmd->add_option("--log-every", opt.log_every, "steps between console lines")->capture_default_str();
  cmd->add_option("--profile", opt.profile.path,
                  "write a Chrome trace of --profile-steps steps (CPU operators; CUDA kernels on a GPU) to FILE");
  cmd->add_option("--profile-wait", opt.profile.wait, "steps before the profiled ones (warm-up)")
      ->capture_default_str();
  cmd->add_option("--profile-steps", opt.profile.steps, "steps the profile records")->capture_default_str();
}

}  // namespace

void add_train_command(CLI::App& app) {
  static TrainCommandOptions opt;
  auto* cmd = app.add_subcommand("train", "Train a DiT or LiT with the diffusion loss (MSE + VB)");
  cmd->add_option("--model", opt.model, "start from this checkpoint");
  cmd->add_option("--preset", opt.preset, "start from scratch with a preset (DiT-XL/2, LiT-S/2, ...)");
  cmd->add_option("--config", opt.config, "start from scratch with this model config JSON");
  cmd->add_option("--text-encoder-config", opt.text_encoder_config,
                  "text models: train a new T5 encoder of this config.json jointly (data from extract-latents "
                  "--tokenizer)");
  cmd->add_option("--text-encoder-init", opt.text_encoder_init,
                  "text models: train the T5 encoder of this folder (config.json, weights, spiece.model) further, "
                  "jointly (e.g. a checkpoint's text_encoder_ema; with --model)");
  cmd->add_option("--tokenizer", opt.tokenizer,
                  "the spiece.model the data was tokenized with (--text-encoder-init: default the folder's)");
  add_common_options(cmd, opt);
  cmd->callback([] { run_training(opt); });
}

void add_distill_command(CLI::App& app) {
  static TrainCommandOptions opt;
  opt.distill = true;
  auto* cmd = app.add_subcommand("distill", "Train a LiT student from a frozen DiT teacher (hybrid distillation)");
  cmd->add_option("--teacher", opt.teacher, "the teacher DiT checkpoint");
  cmd->add_option("--teacher-preset", opt.teacher_preset, "a random-init teacher of a preset (speed runs)");
  cmd->add_option("--student-preset", opt.student_preset, "the student's preset (default: the teacher's LiT)");
  cmd->add_option("--student-config", opt.student_config, "the student's config JSON");
  cmd->add_option("--student-heads", opt.student_heads, "linear-attention heads (0: 2 up to width 768, else 4)");
  cmd->add_option("--init", opt.init, "student initialisation: inherit (from the teacher), scratch, or a FILE")
      ->capture_default_str();
  cmd->add_option("--lambda-eps", opt.train.kd.lambda_eps, "weight of the KD term on the noise prediction")
      ->capture_default_str();
  cmd->add_option("--lambda-var", opt.train.kd.lambda_var, "weight of the KD term on the variance")
      ->capture_default_str();
  add_common_options(cmd, opt);
  cmd->callback([] { run_training(opt); });
}

}  // namespace lit::cli
