#include "tools/cli/train_text.h"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <optional>
#include <sstream>

#include "common/error.h"
#include "common/input_file.h"
#include "kernels/runtime/cuda_support.h"
#include "model/t2i/pixart_io.h"
#include "model/text/t5_init.h"
#include "model/text/tokenizer.h"
#include "tools/cli/commands.h"
#include "tools/cli/train_console.h"
#include "tools/train/caption_data.h"
#include "tools/train/distributed.h"
#include "tools/train/text_trainer.h"

namespace lit::cli {
namespace {

bool is_pixart_config_file(const std::string& path) {
  return !path.empty() && PixArtConfig::is_pixart_json(read_input_file(path, 1 << 20));
}

}  // namespace

bool is_text_model_request(bool distill, const std::string& model, const std::string& preset, const std::string& config,
                           const std::string& teacher) {
  if (distill) return !teacher.empty() && is_pixart_checkpoint(teacher);
  if (!preset.empty()) {
    const auto names = PixArtConfig::preset_names();
    return std::find(names.begin(), names.end(), preset) != names.end();
  }
  if (!config.empty()) return is_pixart_config_file(config);
  return !model.empty() && is_pixart_checkpoint(model);
}

void run_text_training(TextTrainRequest r) {
  if (!r.text_encoder_init.empty() && r.distill)
    throw Error("distill: --text-encoder-init " + r.text_encoder_init +
                " trains a text encoder further with a model (lit train); a student distils on features extracted "
                "with it (lit extract-latents --text-encoder " +
                r.text_encoder_init + ")");
  if (!r.text_encoder_init.empty() && !r.text_encoder_config.empty())
    throw Error("--text-encoder-init " + r.text_encoder_init + " and --text-encoder-config " + r.text_encoder_config +
                ": give one (a loaded encoder's shape is its folder's config.json)");
  const train::DistEnvironment env = train::read_dist_environment();
  std::shared_ptr<train::ProcessGroup> group;
  std::string device_name = r.device;
  if (env.present) {
    r.train.rank = env.rank;
    r.train.world_size = env.world_size;
    if (device_name == "cuda") device_name = "cuda:" + std::to_string(env.local_rank);
    const bool cuda = kernels::parse_device(device_name).is_cuda();
    const std::string backend = r.dist_backend == "auto" ? (cuda ? "nccl" : "gloo") : r.dist_backend;
    if (r.dist_timeout <= 0) throw Error("--dist-timeout must be positive");
    group = train::ProcessGroup::create(env, backend,
                                        std::chrono::milliseconds(static_cast<int64_t>(r.dist_timeout * 1000)));
  }
  const bool chatty = r.train.rank == 0;
  std::ostringstream quiet;
  std::ostream& out = chatty ? std::cout : quiet;
  const at::Device device = kernels::parse_device(device_name);
  at::manual_seed(r.train.seed);
  PixArtLoadOptions load;
  load.device = device;
  load.dtype = at::kFloat;  // float32 master weights whatever the file holds (an fp16 EMA too)

  if (r.data.empty())
    throw Error("no training data: pass --data (a folder written by lit extract-latents --text-encoder)");
  if (!train::is_caption_folder(r.data))
    throw Error(r.data +
                ": a text model trains on captioned data: run `lit extract-latents --text-encoder T5DIR "
                "--data CAPTIONS -o DIR` (or --tokenizer spiece.model to train a text encoder jointly) first "
                "(captions.json missing)");
  const auto data = train::open_captioned_data(r.data);

  PixArtMS teacher{nullptr}, student{nullptr};
  std::string source;
  const auto options = at::TensorOptions().device(device);
  if (r.distill) {
    teacher = load_pixart(r.teacher, load).model;
    if (teacher->config().is_linear())
      throw Error(r.teacher + ": the teacher is a LiT-T2I (linear self-attention); distill from a PixArt-Σ");
    const PixArtConfig sc = r.student_config.empty() ? lit_t2i_config_from_pixart(teacher->config(), r.student_heads)
                                                     : PixArtConfig::from_json_file(r.student_config);
    train::check_text_teacher_student(teacher->config(), sc);
    if (r.init == "inherit") {
      student = PixArtMS(sc, options);
      source = "inherited from the teacher: " + inherit_lit_t2i_from_pixart(student, state_dict(teacher)).to_string();
    } else if (r.init == "scratch") {
      student = PixArtMS(sc, options);
      source = "initialised from scratch";
    } else {
      PixArtLoadOptions lo = load;
      lo.config = sc;
      student = load_pixart(r.init, lo).model;
      source = "loaded from " + r.init;
    }
  } else if (!r.model.empty()) {
    student = load_pixart(r.model, load).model;
    source = "loaded from " + r.model;
  } else {
    const PixArtConfig c =
        r.preset.empty() ? PixArtConfig::from_json_file(r.config) : PixArtConfig::preset(r.preset, r.image_size);
    student = PixArtMS(c, options);
    source = "initialised from scratch";
  }

  // Joint mode: a T5 encoder trained with the model, loaded from a T5 folder (float32 master weights, a new
  // optimizer) or new, initialised from the run seed (its own generator).
  std::optional<train::JointTextEncoder> joint;
  std::string text_source;
  if (!r.text_encoder_init.empty()) {
    joint = train::load_joint_text_encoder(r.text_encoder_init, r.tokenizer, device);
    const int64_t width = joint->model.config().d_model, caption = student->config().caption_channels;
    if (width != caption)
      throw Error(r.text_encoder_init + ": the text encoder is " + std::to_string(width) +
                  " wide (d_model) but the model reads captions " + std::to_string(caption) +
                  " wide (caption_channels)");
    text_source = "loaded from " + r.text_encoder_init;
  } else if (!r.text_encoder_config.empty() || !r.tokenizer.empty()) {
    if (r.distill)
      throw Error(
          "distill: --text-encoder-config/--tokenizer train a text encoder with a model; a student distils on "
          "features extracted with the trained encoder (lit extract-latents --text-encoder CKPT/text_encoder_ema)");
    if (r.text_encoder_config.empty() || r.tokenizer.empty())
      throw Error(
          "training a text encoder jointly needs both --text-encoder-config T5CONFIG.json and --tokenizer "
          "spiece.model (a new encoder), or --text-encoder-init T5DIR (a trained one)");
    const text::T5Tokenizer tokenizer = text::T5Tokenizer::load(r.tokenizer);
    const text::T5InitConfig tc = text::read_t5_init_config(r.text_encoder_config, tokenizer.vocab_size());
    if (tokenizer.vocab_size() > tc.config.vocab_size)
      throw Error(r.text_encoder_config + ": vocab_size " + std::to_string(tc.config.vocab_size) +
                  " is less than the " + std::to_string(tokenizer.vocab_size()) + " token ids of " + r.tokenizer +
                  " (pieces + 100 sentinels; leave vocab_size out to take the tokenizer's)");
    text::T5InitOptions io;
    io.seed = train::mix_seed(r.train.seed, 1);
    io.initializer_factor = tc.initializer_factor;
    io.device = device;
    joint = train::JointTextEncoder{text::init_t5_encoder(tc.config, io), r.tokenizer, tc.initializer_factor};
    text_source = "initialised from scratch";
  }
  std::string text_line;
  if (joint) {
    std::ostringstream line;
    line << "text    T5 " << joint->model.config().summary() << ", " << joint->model.config().parameter_count()
         << " parameters, " << text_source << " (initializer_factor " << joint->initializer_factor
         << "), trained jointly; tokenizer " << joint->spiece_model;
    text_line = line.str();
  }

  r.train.run_dir = r.run_dir;
  r.train.bf16 = r.bf16;
  train::TextTrainer trainer(student, teacher, data, r.train, std::move(joint));
  trainer.on_event = [&out](const std::string& line) { out << line << std::endl; };
  trainer.set_process_group(group);
  if (teacher) out << "teacher " << teacher->config().summary() << "\n";
  out << "student " << student->config().summary() << ", " << student->num_parameters() << " parameters, " << source
      << "\n";
  if (!text_line.empty()) out << text_line << "\n";
  out << "data    " << data->description() << "\n";
  out << "run     " << (r.run_dir.empty() ? std::string("(nothing saved: no -o)") : r.run_dir) << ", " << device.str()
      << (r.bf16 ? ", bf16 autocast" : ", float32") << ", batch " << r.train.batch_size << ", " << r.train.max_steps
      << " steps, caption dropout " << r.train.label_dropout << "\n";
  if (group)
    out << "ranks   " << group->world_size() << " (" << group->backend() << ", "
        << r.train.batch_size / group->world_size() << " images per rank and step)\n";
  if (!r.resume.empty()) trainer.resume(r.resume);

  run_with_console([&](const auto& on_step, const auto& should_stop) { trainer.run(on_step, should_stop); },
                   console_options(r, chatty), device, out);
}

}  // namespace lit::cli
