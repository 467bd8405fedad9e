#include "tools/cli/bench_common.h"

#include "kernels/bench/bench_util.h"
#include "common/error.h"

namespace lit::cli {

void synchronize(const at::Device& device) {
  if (device.is_cuda()) at::empty({1}, at::TensorOptions().device(device)).cpu();  // waits for the stream
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double forward_flops(const ModelConfig& c) {
  const double n = static_cast<double>(c.num_patches()), d = static_cast<double>(c.hidden_size);
  const double mlp = static_cast<double>(c.mlp_hidden_size());
  double block = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * d * mlp + 2 * d * 6 * d;
  if (c.attention == AttentionType::Softmax) {
    block += 2 * 2 * n * n * d;  // q k^T and attn v
  } else {
    const double head = d / static_cast<double>(c.num_heads);
    block += 2 * 2 * n * d * head + 2 * n * d * static_cast<double>(c.dwc_kernel * c.dwc_kernel);
  }
  const double p = static_cast<double>(c.patch_size);
  const double embed = 2 * n * d * static_cast<double>(c.in_channels) * p * p;
  const double final_layer = 2 * n * d * p * p * static_cast<double>(c.out_channels()) + 2 * d * 2 * d;
  return static_cast<double>(c.depth) * block + embed + final_layer;
}

int64_t matmul_rate_side(const at::Device& device) {
  return device.is_cuda() ? 8192 : 1024;
}

double matmul_rate(const at::Device& device, at::ScalarType dtype) {
  return bench::matmul_rate_tflops(device, dtype, matmul_rate_side(device));
}

}  // namespace lit::cli
