// Helpers for the training tests: the tiny fixture configurations (tests/model/model_test_util.h) and small
// models initialised as DiT does.
#pragma once

#include <ATen/ATen.h>

#include "model/backbone/dit.h"
#include "tests/model/model_test_util.h"

namespace lit::test {

// A model freshly initialised as DiT does, from a fixed seed.
inline DiT fresh_model(const ModelConfig& config, uint64_t seed) {
  at::manual_seed(seed);
  return DiT(config);
}

}  // namespace lit::test
