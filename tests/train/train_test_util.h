// Helpers for the training tests: the tiny fixture configurations and small random-init models.
#pragma once

#include <ATen/ATen.h>

#include "model/dit.h"
#include "model/model_config.h"
#include "tests/test_util.h"

namespace lit::test {

// fixtures/dit/config.json: input 8, patch 2, 4 channels, hidden 64, depth 2, 4 heads, 10 classes, learn_sigma.
inline ModelConfig tiny_dit_config() {
  return ModelConfig::from_json_file(fixture("dit/config.json"));
}

// The tiny DiT with linear attention and 2 heads (fixtures/lit).
inline ModelConfig tiny_lit_config() {
  ModelConfig c = tiny_dit_config();
  c.attention = AttentionType::Linear;
  c.num_heads = 2;
  c.dwc_kernel = 5;
  return c;
}

// A model freshly initialised as DiT does, from a fixed seed.
inline DiT fresh_model(const ModelConfig& config, uint64_t seed) {
  at::manual_seed(seed);
  return DiT(config);
}

}  // namespace lit::test
