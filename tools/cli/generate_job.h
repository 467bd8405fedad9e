// `lit generate` as a job: a generation request (pipeline/request.h) plus what is the CLI's own: the output
// folder and its resumption, the classes file, the contact sheet, the npz, the saved latents and the progress
// lines. The images themselves come from the pipeline's Session, as lit-studio's do.
//
// The output folder holds one PNG per image (000000.png, ... so that sorting follows the index) with its
// generation parameters, a run manifest (run.json) that --resume checks the settings against, and, when
// --save-latents is asked, each image's final latents under latents/. An image's files are written under a
// temporary name and renamed, so a file present is complete: a killed run loses at most its current batch.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "pipeline/request.h"

namespace lit::cli {

struct GenerateOptions {
  GenerationRequest request;         // model, VAE, device, dtype, execution, sampling; conditioning below
  std::vector<std::string> classes;  // ids or names, cycled over the images
  std::string classes_file;          // one id or name per line
  bool random_classes = false;       // uniform over the classes (DiT's FID protocol)
  bool all_classes = false;          // image i has class i mod num_classes
  // Text-to-image models: the prompt (has_prompt: --prompt was given, "" included), or one prompt per line
  // of prompts_file (image i has prompt i mod the count; -n defaults to the count).
  bool has_prompt = false;
  std::string prompt, negative_prompt, prompts_file;
  // Which sampling choices the user made: a text model gets PixArt's defaults (pipeline/request.h) for the
  // others (DPM-Solver++, 20 steps, guidance 4.5 over all channels).
  bool sampler_given = false, steps_given = false, cfg_given = false, num_images_given = false;
  bool null_caption_given = false;  // else the built-in text model (a prompt without --model) uses its learned one
  std::string output;               // folder
  int64_t batch_size = 8;
  int64_t size = 0;            // image size in pixels; 0: the model's
  std::string format = "png";  // png, jpg, webp (parameters are embedded in PNGs only)
  std::string grid;            // contact sheet file
  int64_t grid_columns = 0;    // 0: square-ish
  int64_t grid_scale = 1;      // nearest-neighbour enlargement of every image on the sheet
  bool grid_labels = false;    // the class name under each image
  std::string npz;             // arr_0 uint8 NHWC, the ADM evaluator's sample layout
  std::string save_latents;    // final latents/pixels as float tensors (before decoding)
  std::string init_noise;      // latents file with the initial noise (N, C, H, W)
  bool resume = false;
  std::string shard;  // "K/N": only shard K's batches (tools/cli/shards.h); "": RANK/WORLD_SIZE under torchrun
  bool quiet = false;
};

// Runs the job; `cancel` is polled every sampling step (Ctrl-C). Returns the number of images generated in
// this call. Throws lit::Error for bad input (before any sampling) and lit::Cancelled when cancelled (what
// was complete stays; --resume finishes the run).
int64_t run_generate(const GenerateOptions& options, const std::atomic<bool>* cancel);

}  // namespace lit::cli
