// lit encode-text --text-encoder DIR "a prompt" ... -o emb.safetensors: prompts -> T5 token embeddings, the
// attention mask and the token ids, written as one safetensors file (model/text/text_encoder.h does the work).
#include <ATen/ATen.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/runtime/cuda_support.h"
#include "model/text/text_encoder.h"
#include "tools/cli/bench_common.h"
#include "tools/cli/commands.h"
#include "weights/safetensors.h"

namespace lit::cli {
namespace {

struct EncodeTextOptions {
  std::string text_encoder;
  std::vector<std::string> prompts;
  std::string out;
  int64_t max_length = 300;
  bool lowercase = false;
  bool longest = false;
  std::string device = "cpu";
  std::string dtype = "fp32";
};

std::string shape_string(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void run_encode_text(const EncodeTextOptions& o) {
  text::TextEncoderOptions eo;
  eo.device = kernels::parse_device(o.device);
  if (eo.device.is_cuda() && !kernels::cuda_available())
    throw Error("--device " + o.device + ": " + kernels::cuda_summary());
  eo.dtype = dtype_of(o.dtype);
  eo.max_length = o.max_length;
  eo.lowercase = o.lowercase;
  const text::TextEncoder enc = text::TextEncoder::load(o.text_encoder, eo);
  if (!enc.notice().empty()) std::cerr << "lit: note: " << enc.notice() << "\n";
  const std::string dtype_name = safetensors_dtype_name(enc.compute_dtype());
  std::printf("text encoder  %s (T5: %s; %s on %s)\n", enc.files().folder.c_str(),
              enc.model().config().summary().c_str(), dtype_name.c_str(), eo.device.str().c_str());
  std::printf("tokenizer     %s (%lld ids: %lld pieces + %lld sentinels)%s\n", enc.files().spiece_model.c_str(),
              static_cast<long long>(enc.tokenizer().vocab_size()),
              static_cast<long long>(enc.tokenizer().piece_count()),
              static_cast<long long>(enc.tokenizer().extra_ids()), o.lowercase ? ", lowercased" : "");

  const text::TextEmbeddings e =
      enc.encode(o.prompts, o.longest ? text::EncodeLength::kLongestPrompt : text::EncodeLength::kFull);
  text::TokenizeOptions topt;
  topt.max_length = o.max_length;
  topt.lowercase = o.lowercase;
  for (size_t i = 0; i < o.prompts.size(); ++i) {
    std::string pieces;
    for (const auto& p : enc.tokenizer().pieces(o.prompts[i], topt)) pieces += (pieces.empty() ? "" : " ") + p;
    std::printf("prompt %zu      %lld tokens%s: %s </s>\n", i, static_cast<long long>(e.lengths[i]),
                e.truncated[i] ? " (truncated)" : "", pieces.c_str());
  }

  nlohmann::ordered_json meta_prompts = o.prompts;
  const std::map<std::string, std::string> metadata = {
      {"prompts", meta_prompts.dump()},
      {"text_encoder", o.text_encoder},
      {"t5_config", enc.model().config().summary()},
      {"dtype", dtype_name},
      {"max_length", std::to_string(o.max_length)},
      {"lowercase", o.lowercase ? "true" : "false"},
      {"length", o.longest ? "longest prompt (rows past it are zeros)" : "full"},
  };
  write_safetensors(o.out,
                    {{"embeddings", e.embeddings}, {"attention_mask", e.attention_mask}, {"input_ids", e.input_ids}},
                    metadata);
  std::printf("wrote         %s: embeddings %s float32, attention_mask %s, input_ids %s\n", o.out.c_str(),
              shape_string(e.embeddings.sizes()).c_str(), shape_string(e.attention_mask.sizes()).c_str(),
              shape_string(e.input_ids.sizes()).c_str());
}

}  // namespace

void add_encode_text_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "encode-text", "Encode prompts with a T5 text encoder (a Hugging Face folder) into embeddings + mask");
  static EncodeTextOptions opt;
  cmd->add_option("prompts", opt.prompts, "one or more prompts")->required();
  cmd->add_option("--text-encoder", opt.text_encoder,
                  "T5 folder: config.json, model.safetensors (or shards + index), spiece.model")
      ->required();
  cmd->add_option("-o,--output", opt.out, "output .safetensors (embeddings, attention_mask, input_ids)")->required();
  cmd->add_option("--max-length", opt.max_length, "tokens per prompt, EOS included (PixArt-Sigma: 300)")
      ->capture_default_str();
  cmd->add_flag(
      "--lowercase", opt.lowercase,
      "lowercase and strip the prompts first, as diffusers' PixArt pipelines do (PixArt-Sigma's scripts do not)");
  cmd->add_flag("--longest", opt.longest,
                "run T5 only up to the batch's longest prompt; later rows are zeros (not for a null/negative prompt)");
  cmd->add_option("--device", opt.device, "cpu, cuda, cuda:N")->capture_default_str();
  cmd->add_option("--dtype", opt.dtype, "fp32, bf16 (fp16 computes in bf16 on CUDA, fp32 on the CPU)")
      ->capture_default_str();
  cmd->callback([] { run_encode_text(opt); });
}

}  // namespace lit::cli
