// The training loop of `lit train` / `lit distill` for text-to-image models (PixArt-Σ, LiT-T2I): the class
// trainer's recipe (tools/train/trainer.h: AdamW with warm-up, EMA, the diffusion loss MSE + VB, bf16
// autocast, checkpoints, exact resume, log.jsonl, data parallelism over c10d) with the condition being a
// caption -- its cached T5 features and mask -- instead of a class label.
//
// Caption dropout (classifier-free guidance): with probability label_dropout (the config's
// class_dropout_prob, 0.1) a row's caption is replaced by the model's learned null caption y_embedding while
// its mask is kept, as the official PixArt code's CaptionEmbedder.token_drop does. It is drawn here, from the
// run's generator (after the timesteps and the noise, as the class trainer draws its label dropout), not
// inside the model, so that runs resume bit for bit and the teacher always sees the true caption.
//
// Distillation: a frozen PixArt-Σ teacher run on the same x_t, t, caption and mask; the hybrid loss of
// sampler/distillation.h (lambda_eps, lambda_var).
//
// Joint mode (GLIDE trained its text transformer with the diffusion model): given a JointTextEncoder, the data
// is a token folder (lit extract-latents --tokenizer) and every step encodes the batch's token ids with the
// trainable T5 encoder, under the model's autocast; caption dropout replaces the dropped rows' encoder output by
// y_embedding as above; the loss backpropagates into the encoder; one AdamW over model + encoder tensors, one
// gradient clipping over both, an EMA of both. Checkpoints hold the encoder (raw and EMA) as standard T5
// folders, text_encoder/ and text_encoder_ema/ with the tokenizer, so that
//   lit generate --model CKPT/ema.safetensors --text-encoder CKPT/text_encoder_ema --prompt ...
// works, and resume restores them bit for bit. Joint mode takes no teacher: a student is distilled on features
// extracted with the trained (then frozen) encoder folder, the cached-features path above.
#pragma once

#include <ATen/ATen.h>
#include <torch/optim/adamw.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "model/t2i/pixart.h"
#include "model/text/t5_encoder.h"
#include "sampler/gaussian_diffusion.h"
#include "tools/train/caption_data.h"
#include "tools/train/distributed.h"
#include "tools/train/step_random.h"
#include "tools/train/trainer.h"  // TrainOptions, StepLosses, StepStats
#include "tools/train/training_run.h"

namespace lit::train {

// The condition of a batch of a text model: caption features (B, L, C) and their mask (B, L), 1 = token. In
// joint mode the caption token ids (B, L) int64 instead of the features, which the trainer computes.
struct CaptionCondition {
  at::Tensor features, mask;
  at::Tensor tokens = {};  // (a default: {features, mask} stays a complete initialiser)
};

// A T5 encoder trained with the model (model/text/t5_init.h makes a fresh one): float32 tensors on the model's
// device (the trainer makes them require grad), the SentencePiece model the data was tokenized with (it is
// saved beside the encoder in every checkpoint) and the initializer_factor config.json records.
struct JointTextEncoder {
  text::T5EncoderModel model;
  std::string spiece_model;
  double initializer_factor = 1.0;
};

// A T5 folder (config.json, weights in float32, float16 or bfloat16, spiece.model: e.g. a checkpoint's
// text_encoder_ema/) as the encoder that goes on training jointly: float32 master weights of its own on `device`
// (never the file's memory), its config's initializer_factor, and `tokenizer` ("": the folder's spiece.model) as
// the tokenizer. Throws lit::Error naming the file: a tokenizer with more ids than the encoder's vocab_size, a
// given tokenizer whose vocabulary is not the folder's, or what load_t5_encoder refuses.
JointTextEncoder load_joint_text_encoder(const std::string& folder, const std::string& tokenizer,
                                         const at::Device& device);

// Throws lit::Error unless the student has the teacher's shape apart from its self-attention.
void check_text_teacher_student(const PixArtConfig& teacher, const PixArtConfig& student);

class TextTrainer {
 public:
  // student: trained in place; teacher: a frozen PixArt-Σ or nullptr; text_encoder: joint mode (trained in
  // place too; no teacher then). Throws lit::Error naming the problem (teacher and student of different shapes,
  // data that does not fit the model, a token folder without an encoder or made with another tokenizer, an
  // encoder whose width is not the model's caption width, an unwritable run folder).
  TextTrainer(PixArtMS student, PixArtMS teacher, std::shared_ptr<CaptionedData> data, TrainOptions options,
              std::optional<JointTextEncoder> text_encoder = std::nullopt);
  ~TextTrainer();

  // Per-sample losses: x_start (B, C, H, W), t (B,) int64, noise, the student's condition (after any
  // dropout) and the teacher's (the true caption).
  StepLosses losses(const at::Tensor& x_start, const at::Tensor& t, const at::Tensor& noise,
                    const CaptionCondition& student_condition, const CaptionCondition& teacher_condition);
  // The condition with rows where drop (B,) bool is set replaced by the null caption (masks kept).
  CaptionCondition drop_captions(const CaptionCondition& condition, const at::Tensor& drop) const;

  // Joint mode: the trainable encoder's output (B, L, d_model) float32 for token ids and mask, under the
  // model's autocast, recording gradients.
  at::Tensor encode_captions(const at::Tensor& tokens, const at::Tensor& mask) const;

  StepStats step();
  StepStats step_on(const at::Tensor& x_start, const CaptionCondition& condition, const at::Tensor& t,
                    const at::Tensor& noise, const at::Tensor& drop = {});
  void run(const std::function<void(const StepStats&)>& on_step = {}, const std::function<bool()>& should_stop = {});

  // As the class trainer: <run_dir>/checkpoints/step-NNNNNNN/ with model/ema.safetensors (PixArt configs in
  // their metadata: `lit generate` and `lit inspect` read them), optimizer.pt and trainer.safetensors; in joint
  // mode also the T5 folders text_encoder/ and text_encoder_ema/ (config.json, model.safetensors, spiece.model).
  std::string save_checkpoint();
  void resume(const std::string& path);

  void set_process_group(std::shared_ptr<ProcessGroup> group);
  std::string run_description() const;

  int64_t steps_done() const { return step_; }
  PixArtMS& model() { return student_; }
  PixArtMS& ema() { return ema_; }
  bool joint() const { return text_.has_value(); }
  // Joint mode only (throw lit::Error otherwise): the trained encoder and its EMA.
  const text::T5EncoderModel& text_encoder() const;
  const text::T5EncoderModel& text_encoder_ema() const;
  std::function<void(const std::string&)> on_event;

 private:
  void check_setup() const;
  void check_joint_setup() const;
  void copy_to_ema();  // ema <- student, and the encoder's (the EMA is built uninitialised)
  void update_ema(double decay);
  void log_json(const StepStats& stats);
  int64_t local_batch() const { return options_.batch_size / options_.world_size; }

  PixArtMS student_, teacher_, ema_{nullptr};
  std::shared_ptr<CaptionedData> data_;
  TrainOptions options_;
  GaussianDiffusion diffusion_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  std::vector<at::Tensor> trained_;  // the student's, then the encoder's
  std::optional<JointTextEncoder> text_;
  text::T5EncoderModel text_ema_;
  std::vector<at::Tensor> text_params_, text_ema_params_;
  StepRandom random_;  // timesteps, noise, label or caption dropout (see step_random.h)
  std::unique_ptr<BatchLoader> loader_;
  int64_t step_ = 0, position_ = 0;
  StepLog log_;  // RUN/log.jsonl (rank 0 with a run folder)
  std::shared_ptr<ProcessGroup> group_;
  std::unique_ptr<GradientAverager> averager_;
};

}  // namespace lit::train
