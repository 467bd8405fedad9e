#include "tools/train/text_trainer.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/error.h"
#include "kernels/runtime/torch_compat.h"
#include "model/t2i/pixart_io.h"
#include "model/text/t5_init.h"
#include "model/text/t5_loader.h"
#include "model/text/tokenizer.h"
#include "sampler/distillation.h"
#include "tools/train/optimizer_step.h"
#include "tools/train/train_checkpoint.h"

namespace fs = std::filesystem;

namespace lit::train {
namespace {

std::vector<at::Tensor> parameters_of(const PixArtMS& model) {
  std::vector<at::Tensor> out;
  for (const auto& p : model->parameters()) out.push_back(p.detach());
  return out;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? "x" : "") + std::to_string(s[i]);
  return out;
}

bool same_t5(const text::T5Config& a, const text::T5Config& b) {
  return a.vocab_size == b.vocab_size && a.d_model == b.d_model && a.d_kv == b.d_kv && a.d_ff == b.d_ff &&
         a.num_layers == b.num_layers && a.num_heads == b.num_heads &&
         a.relative_attention_num_buckets == b.relative_attention_num_buckets &&
         a.relative_attention_max_distance == b.relative_attention_max_distance &&
         a.layer_norm_epsilon == b.layer_norm_epsilon && a.feed_forward_proj == b.feed_forward_proj;
}

// Copies the T5 folder `folder` of a checkpoint into `target` (the trained encoder or its EMA), after checking
// that it is the encoder being trained and was saved with the same tokenizer.
void load_encoder_into(const std::string& folder, const text::T5EncoderModel& target, const std::string& spiece) {
  const text::T5Files files = text::find_t5_files(folder);
  const text::T5Config saved = text::read_t5_config(files.config);
  if (!same_t5(saved, target.config()))
    throw Error(files.config + ": its encoder (" + saved.summary() + ") is not the one being trained (" +
                target.config().summary() + ")");
  if (file_crc32_hex(files.spiece_model) != file_crc32_hex(spiece))
    throw Error(files.spiece_model + ": the checkpoint's tokenizer is not " + spiece +
                " (resume with the tokenizer the run started with)");
  const text::T5EncoderModel loaded = text::load_t5_encoder(files, target.device(), at::kFloat);
  const auto src = text::t5_named_parameters(loaded), dst = text::t5_named_parameters(target);
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < dst.size(); ++i) dst[i].second.copy_(src.at(i).second);
}

}  // namespace

JointTextEncoder load_joint_text_encoder(const std::string& folder, const std::string& tokenizer,
                                         const at::Device& device) {
  const text::T5Files files = text::find_t5_files(folder);
  const std::string spiece = tokenizer.empty() ? files.spiece_model : tokenizer;
  const text::T5Tokenizer tok = text::T5Tokenizer::load(spiece);
  if (!tokenizer.empty()) {  // the embedding rows belong to the folder's tokenizer's ids
    const text::T5Tokenizer own = text::T5Tokenizer::load(files.spiece_model);
    if (own.vocab_size() != tok.vocab_size())
      throw Error(tokenizer + ": " + std::to_string(tok.vocab_size()) + " token ids, but the encoder in " + folder +
                  " was trained with the " + std::to_string(own.vocab_size()) + " of " + files.spiece_model);
    for (int64_t id = 0; id < tok.vocab_size(); ++id)
      if (own.id_to_piece(id) != tok.id_to_piece(id))
        throw Error(tokenizer + ": token id " + std::to_string(id) + " is '" + tok.id_to_piece(id) + "' but '" +
                    own.id_to_piece(id) + "' in " + files.spiece_model + ", the tokenizer the encoder in " + folder +
                    " was trained with");
  }
  const text::T5InitConfig tc = text::read_t5_init_config(files.config, tok.vocab_size());
  if (tok.vocab_size() > tc.config.vocab_size)
    throw Error(files.config + ": vocab_size " + std::to_string(tc.config.vocab_size) + " is less than the " +
                std::to_string(tok.vocab_size()) + " token ids of " + spiece);
  // In float32 whatever the files hold, and cloned: on the CPU a float32 file's tensors are its mapped memory.
  const text::T5EncoderModel loaded = text::load_t5_encoder(files, device, at::kFloat);
  return {text::clone_t5_encoder(loaded), spiece, tc.initializer_factor};
}

void check_text_teacher_student(const PixArtConfig& t, const PixArtConfig& s) {
  auto differ = [&](const char* what, double a, double b) {
    if (a != b)
      throw Error(std::string("distill: the teacher and the student differ in ") + what + " (" +
                  std::to_string(static_cast<int64_t>(a)) + " vs " + std::to_string(static_cast<int64_t>(b)) +
                  "): the student must have the teacher's shape apart from its self-attention");
  };
  differ("width", t.hidden_size, s.hidden_size);
  differ("depth", t.depth, s.depth);
  differ("patch size", t.patch_size, s.patch_size);
  differ("input size", t.input_size, s.input_size);
  differ("channels", t.in_channels, s.in_channels);
  differ("caption channels", t.caption_channels, s.caption_channels);
  differ("caption length", t.model_max_length, s.model_max_length);
  differ("learned sigma", t.pred_sigma, s.pred_sigma);
}

TextTrainer::TextTrainer(PixArtMS student, PixArtMS teacher, std::shared_ptr<CaptionedData> data, TrainOptions options,
                         std::optional<JointTextEncoder> text_encoder)
    : student_(std::move(student)),
      teacher_(std::move(teacher)),
      data_(std::move(data)),
      options_(std::move(options)),
      diffusion_(GaussianDiffusion::create("")),
      text_(std::move(text_encoder)),
      random_(options_.seed, diffusion_.num_timesteps(), data_->example_shape(), options_.batch_size,
              options_.label_dropout, options_.rank, options_.world_size,
              options_.pin_memory && student_->device().is_cuda()) {
  check_setup();
  student_->eval();  // caption dropout is drawn here (see the header)
  ema_ = PixArtMS(student_->config(), at::TensorOptions().dtype(student_->dtype()).device(student_->device()), false);
  ema_->eval();
  for (auto& p : ema_->parameters()) p.set_requires_grad(false);
  if (text_) {
    text_params_ = text::t5_parameters(text_->model);
    for (auto& p : text_params_) {
      if (!p.is_leaf()) throw Error("train: the text encoder's tensors must be leaves (a fresh or loaded encoder)");
      p.set_requires_grad(true);
    }
    text_ema_ = text::clone_t5_encoder(text_->model);
    text_ema_params_ = text::t5_parameters(text_ema_);
  }
  copy_to_ema();
  for (const auto& p : student_->parameters())
    if (p.requires_grad()) trained_.push_back(p);
  for (const auto& p : text_params_) trained_.push_back(p);
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

TextTrainer::~TextTrainer() = default;

void TextTrainer::check_setup() const {
  const PixArtConfig& s = student_->config();
  if (teacher_) check_text_teacher_student(teacher_->config(), s);
  const auto shape = data_->example_shape();
  if (shape != std::vector<int64_t>{s.in_channels, s.input_size, s.input_size})
    throw Error("train: the data's examples are " + shape_text(shape) + " but the model takes " +
                shape_text({s.in_channels, s.input_size, s.input_size}) + " (" + data_->description() + ")");
  const CaptionFolderInfo& d = data_->info();
  if (text_) {
    check_joint_setup();
  } else if (d.tokens) {
    throw Error("train: " + data_->dir() +
                " holds caption token ids (lit extract-latents --tokenizer): train a text encoder jointly with the "
                "model (--text-encoder-config T5CONFIG.json --tokenizer " +
                d.tokenizer + "), or extract T5 features with --text-encoder");
  } else if (d.caption_channels != s.caption_channels || d.max_length != s.model_max_length) {
    throw Error("train: the data's captions are " + std::to_string(d.max_length) + " tokens of width " +
                std::to_string(d.caption_channels) + " but the model takes " + std::to_string(s.model_max_length) +
                " of width " + std::to_string(s.caption_channels) +
                " (extract with the model's text encoder and --max-length)");
  }
  if (options_.batch_size < 1 || options_.max_steps < 0 || options_.lr <= 0 || options_.ema_decay < 0 ||
      options_.ema_decay > 1 || options_.kd.lambda_eps < 0 || options_.kd.lambda_var < 0 ||
      options_.label_dropout < 0 || options_.label_dropout > 1)
    throw Error("train: batch size, steps, learning rate, EMA decay, caption dropout and KD weights must be positive");
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

void TextTrainer::check_joint_setup() const {
  const PixArtConfig& s = student_->config();
  const CaptionFolderInfo& d = data_->info();
  const text::T5Config& t5 = text_->model.config();
  if (teacher_)
    throw Error(
        "train: joint text-encoder training takes no teacher: distil on features extracted with the trained "
        "encoder (lit extract-latents --text-encoder CKPT/text_encoder_ema)");
  if (!d.tokens)
    throw Error("train: " + data_->dir() +
                " holds T5 features: training a text encoder jointly needs the captions' token ids (lit "
                "extract-latents --tokenizer " +
                text_->spiece_model + ")");
  if (t5.d_model != s.caption_channels)
    throw Error("train: the text encoder is " + std::to_string(t5.d_model) +
                " wide (d_model) but the model reads captions " + std::to_string(s.caption_channels) +
                " wide (caption_channels): make them equal");
  if (d.max_length != s.model_max_length)
    throw Error("train: the data's captions are " + std::to_string(d.max_length) + " tokens but the model takes " +
                std::to_string(s.model_max_length) + " (model_max_length): extract with --max-length " +
                std::to_string(s.model_max_length));
  const std::string crc = file_crc32_hex(text_->spiece_model);
  if (crc != d.tokenizer_crc32)
    throw Error("train: the data was tokenized with " + d.tokenizer + " (crc32 " + d.tokenizer_crc32 + "), not " +
                text_->spiece_model + " (crc32 " + crc + "): extract the captions again with --tokenizer " +
                text_->spiece_model);
  if (d.vocab_size > t5.vocab_size)
    throw Error("train: the tokenizer has " + std::to_string(d.vocab_size) +
                " token ids but the text encoder's vocab_size is " + std::to_string(t5.vocab_size));
  if (text_->model.device() != student_->device() || text_->model.dtype() != at::kFloat)
    throw Error("train: the text encoder is on " + text_->model.device().str() + " in " +
                c10::toString(text_->model.dtype()) + "; the model trains on " + student_->device().str() +
                " in float32 (master weights)");
}

const text::T5EncoderModel& TextTrainer::text_encoder() const {
  if (!text_) throw Error("train: no text encoder is trained jointly");
  return text_->model;
}

const text::T5EncoderModel& TextTrainer::text_encoder_ema() const {
  if (!text_) throw Error("train: no text encoder is trained jointly");
  return text_ema_;
}

void TextTrainer::copy_to_ema() {
  at::NoGradGuard no_grad;
  const auto src = parameters_of(student_), dst = parameters_of(ema_);
  for (size_t i = 0; i < dst.size(); ++i) dst[i].copy_(src[i]);
  ema_->y_embedder->y_embedding.copy_(student_->y_embedder->y_embedding);
  for (size_t i = 0; i < text_ema_params_.size(); ++i) text_ema_params_[i].copy_(text_params_[i].detach());
}

void TextTrainer::update_ema(double decay) {
  at::NoGradGuard no_grad;
  auto src = parameters_of(student_);
  auto dst = parameters_of(ema_);
  for (size_t i = 0; i < text_params_.size(); ++i) {
    src.push_back(text_params_[i].detach());
    dst.push_back(text_ema_params_[i]);
  }
  at::_foreach_mul_(dst, decay);
  at::_foreach_add_(dst, src, 1.0 - decay);
}

// ---------------------------------------------------------------------------------------------------------
// One step
// ---------------------------------------------------------------------------------------------------------
CaptionCondition TextTrainer::drop_captions(const CaptionCondition& c, const at::Tensor& drop) const {
  if (!drop.defined()) return c;
  const at::Tensor null = student_->y_embedder->y_embedding.to(c.features.device(), c.features.scalar_type());
  const at::Tensor d = drop.to(c.features.device(), at::kBool).view({-1, 1, 1});
  return {at::where(d, null.unsqueeze(0).expand_as(c.features), c.features), c.mask};
}

StepLosses TextTrainer::losses(const at::Tensor& x_start, const at::Tensor& t, const at::Tensor& noise,
                               const CaptionCondition& sc, const CaptionCondition& tc) {
  const at::Device device = student_->device();
  std::optional<compat::AutocastGuard> autocast;
  if (options_.bf16) autocast.emplace(device.type(), at::kBFloat16);
  const ModelFn student = [&](const at::Tensor& x, const at::Tensor& tt) {
    return student_->forward(x, tt, sc.features, sc.mask).to(at::kFloat);
  };
  StepLosses out;
  if (teacher_ && (options_.kd.lambda_eps != 0 || options_.kd.lambda_var != 0)) {
    const ModelFn teacher = [&](const at::Tensor& x, const at::Tensor& tt) {
      return teacher_->forward(x, tt, tc.features.to(device), tc.mask.to(device)).to(at::kFloat);
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

at::Tensor TextTrainer::encode_captions(const at::Tensor& tokens, const at::Tensor& mask) const {
  if (!text_) throw Error("train: no text encoder is trained jointly (the data's captions are T5 features)");
  std::optional<compat::AutocastGuard> autocast;
  if (options_.bf16) autocast.emplace(student_->device().type(), at::kBFloat16);
  return text_->model.forward(tokens, mask.to(student_->device(), at::kLong)).to(at::kFloat);
}

StepStats TextTrainer::step_on(const at::Tensor& x_start, const CaptionCondition& condition, const at::Tensor& t,
                               const at::Tensor& noise, const at::Tensor& drop) {
  const auto start = std::chrono::steady_clock::now();
  const at::Device device = student_->device();
  // Non-blocking where the loader and StepRandom pinned the host memory (training on CUDA): the copies overlap.
  const at::Tensor x = x_start.to(device, at::kFloat, /*non_blocking=*/true), tt = t.to(device),
                   n = noise.to(device, at::kFloat, /*non_blocking=*/true);
  const double lr = scheduled_lr(options_.lr_schedule, options_.lr, options_.min_lr, options_.warmup_steps,
                                 options_.max_steps, step_);
  for (auto& group : optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  optimizer_->zero_grad();

  // Joint mode: the caption features are the trainable encoder's output, and the loss reaches its weights.
  CaptionCondition truth;
  truth.mask = condition.mask.to(device, at::kLong, /*non_blocking=*/true);
  if (text_) {
    if (!condition.tokens.defined()) throw Error("train: a joint training step needs the captions' token ids");
    truth.features = encode_captions(condition.tokens.to(device, at::kLong, /*non_blocking=*/true), truth.mask);
  } else {
    truth.features = condition.features.to(device, at::kFloat, /*non_blocking=*/true);
  }
  const CaptionCondition dropped = drop_captions(truth, drop);
  const StepLosses l = losses(x, tt, n, dropped, truth);
  if (averager_) averager_->begin();
  l.total.mean().backward();
  if (averager_) averager_->finish();

  std::vector<at::Tensor> grads;
  for (auto& p : trained_)
    if (p.grad().defined()) grads.push_back(p.grad());
  // Clipping and AdamW as multi-tensor kernels; the norm is read back with the losses, in one copy.
  const at::Tensor grad_norm = clip_grad_norm(grads, options_.grad_clip);
  adamw_step(*optimizer_);
  update_ema(options_.ema_decay);
  ++step_;

  StepStats s = gather_step_stats(l, grad_norm, group_.get(), options_.world_size, device);
  s.step = step_;
  s.lr = lr;
  s.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  s.images_per_second = static_cast<double>(x.size(0) * options_.world_size) / std::max(s.step_seconds, 1e-9);
  return s;
}

StepStats TextTrainer::step() {
  const auto start = std::chrono::steady_clock::now();
  if (!loader_) {
    LoaderOptions loading;
    loading.threads = options_.data_threads;
    loading.pin_memory = options_.pin_memory && student_->device().is_cuda();
    // The batch's captions (token ids or T5 features, by the examples' indices) gathered on the loader's
    // thread with the images, ahead of the step.
    const std::shared_ptr<CaptionedData> data = data_;
    const bool tokens = text_.has_value();
    loading.extra = [data, tokens](const at::Tensor& labels) {
      at::Tensor captions, mask;
      if (tokens)
        data->tokens(labels, &captions, &mask);
      else
        data->captions(labels, &captions, &mask);
      return std::vector<at::Tensor>{captions, mask};
    };
    loader_ = std::make_unique<BatchLoader>(data_, local_batch(), options_.seed, position_, options_.rank,
                                            options_.world_size, loading);
  }
  const Batch batch = loader_->next();  // labels are the examples' indices (CaptionedData)
  position_ = loader_->position();
  CaptionCondition condition;
  (text_ ? condition.tokens : condition.features) = batch.extra.at(0);
  condition.mask = batch.extra.at(1);
  const StepDraw d = random_.next();
  StepStats s = step_on(batch.x, condition, d.t, d.noise, d.drop);
  s.step_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  s.images_per_second = static_cast<double>(options_.batch_size) / std::max(s.step_seconds, 1e-9);
  log_json(s);
  return s;
}

void TextTrainer::log_json(const StepStats& s) {
  log_.write(step_stats_json(s));
}

void TextTrainer::run(const std::function<void(const StepStats&)>& on_step, const std::function<bool()>& should_stop) {
  const bool writer = !options_.run_dir.empty() && options_.rank == 0;
  if (group_) check_same_on_all_ranks(*group_, "training run", run_description(), student_->device());
  const StepLoop loop{options_.max_steps, options_.checkpoint_every, writer, group_.get(), student_->device()};
  const auto one_step = [&] {
    const StepStats s = step();
    if (on_step) on_step(s);
    return step_;
  };
  run_steps(
      loop, step_, one_step, [&] { save_checkpoint(); }, should_stop);
}

void TextTrainer::set_process_group(std::shared_ptr<ProcessGroup> group) {
  if (!group) return;
  check_process_group(*group, options_.rank, options_.world_size);
  group_ = std::move(group);
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors = module_tensors(*student_);
  tensors.insert(tensors.end(), text_params_.begin(), text_params_.end());
  group_->broadcast(tensors, 0);
  if (teacher_) {
    std::vector<at::Tensor> t = module_tensors(*teacher_);
    group_->broadcast(t, 0);
  }
  copy_to_ema();
  averager_ = std::make_unique<GradientAverager>(group_, trained_);
}

std::string TextTrainer::run_description() const {
  return describe_run(options_,
                      {{"student", student_->config().summary()},
                       {"text_encoder", text_ ? text_->model.config().summary() : std::string()},
                       {"teacher", teacher_ ? teacher_->config().summary() : std::string()},
                       {"data", data_->description()},
                       {"data_size", std::to_string(data_->size())}},
                      step_, position_);
}

std::string TextTrainer::save_checkpoint() {
  if (options_.run_dir.empty()) throw Error("train: no run folder to save a checkpoint in");
  const std::string checkpoints = (fs::path(options_.run_dir) / "checkpoints").string();
  const std::map<std::string, std::string> meta = {{"train_step", std::to_string(step_)}};
  const std::string dir = write_checkpoint_folder(checkpoints, step_, [&](const std::string& tmp) {
    save_pixart(tmp + "/model.safetensors", student_, std::nullopt, meta);
    save_pixart(tmp + "/ema.safetensors", ema_, std::nullopt, meta);
    if (text_) {
      text::save_t5_folder(tmp + "/text_encoder", text_->model, text_->spiece_model, text_->initializer_factor);
      text::save_t5_folder(tmp + "/text_encoder_ema", text_ema_, text_->spiece_model, text_->initializer_factor);
    }
    const uint32_t optimizer_crc = save_optimizer(tmp + "/optimizer.pt", *optimizer_);
    save_trainer_state(tmp + "/trainer.safetensors", {step_, position_, options_.seed, random_.state(), optimizer_crc});
  });
  prune_checkpoints(checkpoints, options_.keep_checkpoints);
  if (on_event) on_event("checkpoint " + dir);
  return dir;
}

void TextTrainer::resume(const std::string& path) {
  const std::string dir = find_checkpoint(path);
  const TrainerState state = load_trainer_state(dir + "/trainer.safetensors");
  check_checkpoint_seed(dir, state.seed, options_.seed);
  const bool has_text = fs::is_directory(dir + "/text_encoder");
  if (has_text && !text_)
    throw Error(dir +
                ": the run trained a text encoder jointly (text_encoder/): resume it with "
                "--text-encoder-config and --tokenizer, or --text-encoder-init, as it started");
  if (!has_text && text_)
    throw Error(dir + ": no text_encoder/ in the checkpoint: the run did not train a text encoder jointly");
  for (const char* name : {"model", "ema"}) {
    const std::string file = dir + "/" + name + ".safetensors";
    const PixArtCheckpoint ck = read_pixart_checkpoint(file);
    if (!ck.config || *ck.config != student_->config())
      throw Error(file + ": its config (" + (ck.config ? ck.config->summary() : std::string("none")) +
                  ") is not the model's (" + student_->config().summary() + ")");
    PixArtMS& target = std::string(name) == "model" ? student_ : ema_;
    at::NoGradGuard no_grad;
    load_state_dict(target, ck.tensors);
  }
  if (text_) {
    load_encoder_into(dir + "/text_encoder", text_->model, text_->spiece_model);
    load_encoder_into(dir + "/text_encoder_ema", text_ema_, text_->spiece_model);
  }
  load_optimizer(dir + "/optimizer.pt", *optimizer_, state.optimizer_crc);
  random_.set_state(state.generator_state);
  step_ = state.step;
  position_ = state.position;
  loader_.reset();
  log_.truncate_after(step_);
  if (on_event) on_event("resumed from " + dir + " at step " + std::to_string(step_));
}

}  // namespace lit::train
