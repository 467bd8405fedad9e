// Timing helpers shared by the benchmarks (kernels/bench and `lit bench`): medians of repeated runs, CUDA
// events on the GPU, and the two ceilings of a device measured in the same process (device-to-device copy
// rate, matrix-multiply rate).
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

#ifdef LIT_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace lit::bench {

inline double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

#ifdef LIT_WITH_CUDA
// Median milliseconds of fn() over `repeats` runs after `warmup`, timed with events on the current stream.
inline double time_cuda_ms(const std::function<void()>& fn, int warmup = 10, int repeats = 100) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  for (int i = 0; i < repeats; ++i) {
    at::cuda::CUDAEvent start(cudaEventDefault), stop(cudaEventDefault);
    start.record(stream);
    fn();
    stop.record(stream);
    stop.synchronize();
    times.push_back(start.elapsed_time(stop));
  }
  return median(times);
}

// Device-to-device copy rate in GB/s (bytes read + bytes written), on 1 GiB buffers.
inline double copy_rate_gbs() {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kByte);
  const at::Tensor a = at::empty({int64_t(1) << 30}, opts).fill_(1), b = at::empty_like(a);
  const double ms = time_cuda_ms([&] { b.copy_(a); }, 3, 20);
  return 2.0 * static_cast<double>(a.numel()) / ms / 1e6;
}

#endif

inline double time_cpu_ms(const std::function<void()>& fn, int warmup = 3, int repeats = 20) {
  for (int i = 0; i < warmup; ++i) fn();
  std::vector<double> times;
  for (int i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return median(times);
}

// The device's matrix-multiply rate in TFLOP/s for this dtype: square products of the given side on random
// operands, the median of repeated runs (CUDA events on a GPU, the host clock on the CPU). The hardware
// floor the benchmarks compare against.
inline double matmul_rate_tflops(const at::Device& device, at::ScalarType dtype, int64_t side) {
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  const at::Tensor a = at::randn({side, side}, opts), b = at::randn({side, side}, opts);
  const auto run = [&] { at::matmul(a, b); };
  double ms = 0;
#ifdef LIT_WITH_CUDA
  if (device.is_cuda()) ms = time_cuda_ms(run, 3, 20);
#endif
  if (!device.is_cuda()) ms = time_cpu_ms(run, 1, 5);
  const double m = static_cast<double>(side);
  return 2.0 * m * m * m / ms / 1e9;
}

}  // namespace lit::bench
