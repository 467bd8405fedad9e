// Loading a T5 encoder from a Hugging Face folder: config.json + model.safetensors, or the shards
// model-0000k-of-0000n.safetensors + model.safetensors.index.json (weights/safetensors_folder.h), in
// float32, float16 or bfloat16, T5EncoderModel or a full T5 (its decoder's tensors are never read). A
// diffusers pipeline folder (text_encoder/ + tokenizer/) works too.
//
// Each tensor goes from its memory-mapped file straight to the chosen device and dtype: one copy per tensor,
// never a second copy of the model (on the CPU, a file already in the chosen dtype is used in place).
#pragma once

#include <ATen/ATen.h>

#include <string>

#include "model/text/t5_encoder.h"

namespace lit::text {

struct T5Files {
  std::string folder;  // holds config.json and the weights
  std::string config;
  std::string spiece_model;  // the tokenizer: <folder>/spiece.model or, in a diffusers pipeline, ../tokenizer/
};

// Finds the files of a T5 folder (or of a diffusers pipeline folder's text_encoder/ and tokenizer/). Throws
// lit::Error naming the missing file: config.json, spiece.model. The weights are checked by load_t5_encoder.
T5Files find_t5_files(const std::string& path);

// The dtype the encoder computes in for a requested dtype. T5 overflows in float16 (its feed-forward
// activations exceed 65504; transformers clamps, which changes the result), so float16 becomes bfloat16 on
// CUDA and float32 on the CPU, and *notice says so; float32 and bfloat16 are kept.
at::ScalarType t5_compute_dtype(at::ScalarType requested, const at::Device& device, std::string* notice);

// Loads the encoder's tensors into `dtype` on `device` (use t5_compute_dtype first). Throws lit::Error with
// one line naming the file: a missing weights file or shard, a tensor the config needs but the files lack, a
// tensor whose shape disagrees with the config (both shapes named), an encoder tensor the config does not
// know, a corrupt or truncated safetensors file.
T5EncoderModel load_t5_encoder(const T5Files& files, const at::Device& device, at::ScalarType dtype);

}  // namespace lit::text
