// A built-in text model made by the test, so that the tests of the built-in text model's defaults do not need the
// shipped files (model/builtin/t2i/lit-t2i.safetensors and t5/): a tiny LiT-T2I with random weights in the
// built-in's layout — pixel space (64x64 RGB, no VAE), its y_embedding as the learned null caption, official names
// and the "config" metadata in fp16 as `lit convert --dtype fp16` writes it — named lit-t2i.safetensors, with a
// T5 folder t5/ beside it (a fresh T5 encoder saved as the recipe saves its own, with the tiny T5 fixture's
// tokenizer). While the object lives, $LIT_BUILTIN_TEXT_MODEL names it: the lookup
// (model/backbone/builtin_model.h) takes it first, in this process and in the `lit` commands it starts.
#pragma once

#include <ATen/ATen.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "model/t2i/pixart.h"
#include "model/t2i/pixart_io.h"
#include "model/text/t5_config.h"
#include "model/text/t5_init.h"
#include "tests/test_util.h"

namespace lit::test {

// An environment variable set (or unset) while the object lives, then restored.
class ScopedEnv {
 public:
  ScopedEnv(std::string name, const std::optional<std::string>& value) : name_(std::move(name)) {
    if (const char* old = std::getenv(name_.c_str())) old_ = std::string(old);
    set(value);
  }
  ~ScopedEnv() { set(old_); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  void set(const std::optional<std::string>& value) {
    if (value)
      ::setenv(name_.c_str(), value->c_str(), 1);
    else
      ::unsetenv(name_.c_str());
  }
  std::string name_;
  std::optional<std::string> old_;
};

// The tiny built-in text model's architecture: the shipped one's kind (LiT-T2I, 64x64 RGB pixels, pred_sigma),
// small enough to sample on the CPU in a moment (8x8 patches: 64 tokens, width 64, 2 blocks).
inline PixArtConfig tiny_builtin_text_config() {
  PixArtConfig c;
  c.input_size = 64;
  c.patch_size = 8;
  c.in_channels = 3;
  c.hidden_size = 64;
  c.depth = 2;
  c.num_heads = 4;
  c.caption_channels = 64;  // the T5's d_model
  c.model_max_length = 24;
  c.pe_interpolation = 1.0;
  c.attention = AttentionType::Linear;
  c.linear_heads = 2;
  c.dwc_kernel = 5;
  return c;
}

// The tiny T5 beside it: d_model 64, 2 layers of 4 heads x 16, gated-gelu; vocab 1100 (the fixture tokenizer's
// 1000 pieces and 100 sentinels).
inline text::T5Config tiny_builtin_t5_config() {
  text::T5Config c;
  c.vocab_size = 1100;
  c.d_model = 64;
  c.d_kv = 16;
  c.num_heads = 4;
  c.d_ff = 128;
  c.num_layers = 2;
  c.feed_forward_proj = "gated-gelu";
  return c;
}

class TinyBuiltinTextModel {
 public:
  // Writes DIR/lit-t2i.safetensors and DIR/t5/ (DIR emptied first) and points $LIT_BUILTIN_TEXT_MODEL at it.
  explicit TinyBuiltinTextModel(const std::string& dir)
      : model(dir + "/lit-t2i.safetensors"), text_encoder(dir + "/t5"), env_("LIT_BUILTIN_TEXT_MODEL", model) {
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    at::manual_seed(19);
    save_pixart(model, PixArtMS(tiny_builtin_text_config()), at::kHalf);
    text::T5InitOptions t5;
    t5.seed = 19;
    text::save_t5_folder(text_encoder, text::init_t5_encoder(tiny_builtin_t5_config(), t5),
                         fixture("t2i/tokenizer/spiece.model"));
  }
  TinyBuiltinTextModel(const TinyBuiltinTextModel&) = delete;
  TinyBuiltinTextModel& operator=(const TinyBuiltinTextModel&) = delete;

  const std::string model;         // DIR/lit-t2i.safetensors
  const std::string text_encoder;  // DIR/t5

 private:
  ScopedEnv env_;
};

}  // namespace lit::test
