// `lit train` / `lit distill` for text-to-image models (PixArt-Σ, LiT-T2I): what cmd_train.cpp hands over
// when the model is a PixArt config, preset or checkpoint, and the run itself (tools/train/text_trainer.h).
//
//   lit extract-latents --text-encoder T5 [--vae VAE] --data CAPTIONS -o DATA
//   lit train   --config pixart.json | --preset PixArt-Sigma-XL/2 | --model FILE  --data DATA -o RUN
//   lit distill --teacher PIXART [--student-config FILE] [--init inherit|scratch|FILE]  --data DATA -o RUN
//
// With a text encoder trained jointly (text_trainer.h's joint mode):
//   lit extract-latents --tokenizer spiece.model --max-length L --data CAPTIONS -o TOKENS
//   lit train --config pixart.json --text-encoder-config t5.json --tokenizer spiece.model --data TOKENS -o RUN
// or going on from the weights of such a run (without its optimizer state: a new run), e.g. its fp16 EMA:
//   lit train --model pixart.safetensors --text-encoder-init T5DIR [--tokenizer spiece.model] --data TOKENS -o RUN
#pragma once

#include <cstdint>
#include <string>

#include "tools/cli/step_profiler.h"
#include "tools/train/trainer.h"

namespace lit::cli {

struct TextTrainRequest {
  bool distill = false;
  std::string model, preset, config;          // train
  std::string teacher, student_config, init;  // distill
  int64_t student_heads = 0, image_size = 256;
  std::string text_encoder_config, tokenizer;  // train: a new T5 encoder trained jointly
  std::string text_encoder_init;               // train: ... or this T5 folder's encoder, trained further
  std::string data, run_dir, resume, device = "cpu";
  std::string dist_backend = "auto";
  double dist_timeout = 600;
  bool bf16 = false;
  int64_t log_every = 10;
  ProfileOptions profile;
  train::TrainOptions train;
};

// Whether these model arguments name a text model: a PixArt config JSON, a PixArt preset, a PixArt
// checkpoint (train), or a PixArt teacher (distill).
bool is_text_model_request(bool distill, const std::string& model, const std::string& preset, const std::string& config,
                           const std::string& teacher);

// Throws lit::Error with one line naming the problem; ExitStatus{130} after Ctrl-C.
void run_text_training(TextTrainRequest request);

}  // namespace lit::cli
