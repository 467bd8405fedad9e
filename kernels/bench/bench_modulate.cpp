// Benchmark of the modulate kernels: the ATen reference, v1 and v2, on DiT-XL/2 block shapes.
// Reports the median of repeated runs, the ratio to the reference measured in the same process, and the
// fraction of the memory floor (x read once + out written once, at the device-to-device copy rate measured
// here on a buffer of the same size).
#include <ATen/ATen.h>

#include <cstdio>
#include <vector>

#include "kernels/bench/bench_util.h"
#include "kernels/modulate.h"
#include "kernels/runtime/cuda_support.h"

namespace {
#ifdef LIT_WITH_CUDA
using lit::bench::time_cuda_ms;
#endif
using lit::bench::time_cpu_ms;
}  // namespace

int main() {
  const int64_t B = 32, N = 256, D = 1152;  // DiT-XL/2 at 256 px, batch 32
  std::printf("modulate benchmark, x = (%lld, %lld, %lld); %s\n", (long long)B, (long long)N, (long long)D,
              lit::kernels::cuda_summary().c_str());
  if (!lit::kernels::cuda_available()) {
    const at::Tensor x = at::randn({B, N, D}), sh = at::randn({B, D}), sc = at::randn({B, D});
    const double ms = time_cpu_ms([&] { lit::kernels::modulate_reference(x, sh, sc); });
    std::printf("CPU reference fp32: median %.3f ms (%.1f GB/s); no CUDA device, kernels not timed\n", ms,
                2.0 * x.numel() * 4 / ms / 1e6);
    return 0;
  }
#ifdef LIT_WITH_CUDA
  std::printf("%-6s %-10s %10s %10s %12s %10s\n", "dtype", "version", "median_us", "GB/s", "vs_reference", "of_floor");
  for (auto dtype : {at::kFloat, at::kBFloat16}) {
    const auto opts = at::TensorOptions().device(at::kCUDA).dtype(dtype);
    // Several input sets, rotated, so that repeated runs do not just hit the L2 cache.
    constexpr int kSets = 4;
    std::vector<at::Tensor> xs, shs, scs, outs;
    for (int i = 0; i < kSets; ++i) {
      xs.push_back(at::randn({B, N, D}, opts));
      shs.push_back(at::randn({B, D}, opts));
      scs.push_back(at::randn({B, D}, opts));
      outs.push_back(at::empty({B, N, D}, opts));
    }
    const double bytes = 2.0 * xs[0].numel() * xs[0].element_size();
    int k = 0;
    const double copy_ms = time_cuda_ms([&] {
      outs[k % kSets].copy_(xs[k % kSets]);
      ++k;
    });
    const double floor_ms = copy_ms;  // same bytes moved
    const double ref_ms = time_cuda_ms([&] {
      lit::kernels::modulate_reference(xs[k % kSets], shs[k % kSets], scs[k % kSets]);
      ++k;
    });
    auto row = [&](const char* name, double ms) {
      std::printf("%-6s %-10s %10.1f %10.0f %11.2fx %9.0f%%\n", dtype == at::kFloat ? "fp32" : "bf16", name, ms * 1e3,
                  bytes / ms / 1e6, ref_ms / ms, 100.0 * floor_ms / ms);
    };
    row("copy", copy_ms);
    row("aten_ref", ref_ms);
    for (int v : {1, 2}) {
      const double ms = time_cuda_ms([&] {
        lit::kernels::modulate_cuda(xs[k % kSets], shs[k % kSets], scs[k % kSets], v);
        ++k;
      });
      row(v == 1 ? "v1" : "v2", ms);
    }
  }
#endif
  return 0;
}
