// Helpers for the model tests: fixture state dicts, the tiny configurations, meta-device models.
#pragma once

#include <string>

#include "model/backbone/dit.h"
#include "model/backbone/model_config.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"
#include "weights/state_dict.h"

namespace lit::test {

// Every tensor of a safetensors file, in file order.
inline StateDict read_safetensors(const std::string& path) {
  StateDict sd;
  for (auto& [name, tensor] : SafetensorsFile::open(path).tensors()) sd.insert(name, tensor);
  return sd;
}

// fixtures/dit/config.json: input 8, patch 2, 4 channels, hidden 64, depth 2, 4 heads, 10 classes, learn_sigma.
inline ModelConfig tiny_dit_config() {
  return ModelConfig::from_json_file(fixture("dit/config.json"));
}

// fixtures/lit/config.json: the tiny DiT with linear attention and 2 heads.
inline ModelConfig tiny_lit_config() {
  ModelConfig c = tiny_dit_config();
  c.attention = AttentionType::Linear;
  c.num_heads = 2;
  c.dwc_kernel = 5;
  return c;
}

// A model with every parameter random (the DiT init zeroes the output layer), for shape and consistency tests;
// in eval mode (no label dropout).
inline DiT random_model(const ModelConfig& config, uint64_t seed = 0) {
  at::manual_seed(seed);
  DiT model(config);
  at::NoGradGuard no_grad;
  for (auto& item : model->named_parameters())
    if (item.key() != "pos_embed") item.value().normal_(0.0, 0.2);
  model->eval();
  return model;
}

}  // namespace lit::test
