// Shared by the `lit bench` commands: dtype names, waiting for a device, the FLOP count of one forward pass,
// and a device's matrix-multiply rate (the hardware floor a transformer forward is measured against).
#pragma once

#include <ATen/ATen.h>

#include <chrono>
#include <string>

#include "common/format.h"
#include "model/backbone/model_config.h"

namespace lit::cli {

// The --dtype of a command: common/format.h's one dtype parser (lit::Error naming --dtype).
inline at::ScalarType dtype_of(const std::string& name) {
  return parse_dtype(name);
}

// Returns when the device's queued work is done (a no-op on the CPU).
void synchronize(const at::Device& device);

double seconds_since(std::chrono::steady_clock::time_point t0);

// Multiply-adds of one forward pass of one image, counted as 2 FLOPs each (linear layers and attention).
double forward_flops(const ModelConfig& config);

// The device's matrix-multiply rate in this dtype (TFLOP/s): bench::matmul_rate_tflops with square products
// of side matmul_rate_side(device), 8192 on CUDA and 1024 on the CPU.
double matmul_rate(const at::Device& device, at::ScalarType dtype);
int64_t matmul_rate_side(const at::Device& device);

}  // namespace lit::cli
