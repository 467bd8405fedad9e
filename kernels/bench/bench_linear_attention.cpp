// Benchmark of LiT's linear attention on the GPU: the fused kernels (linear_attention_cuda.cu) against the
// ATen reference (the same formula as separate ATen ops, bf16), against the composed form (cuBLAS products per
// head, linear_attention_composed: linear and quadratic) and against softmax attention as DiT-XL/2
// needs it (scaled_dot_product_attention, flash, 16 heads x 72), at N = 256 ... 16384 tokens with
// B * N = 65536 tokens per call. Forward (inference) and forward + backward (training) tables: median time,
// ratio to the reference and to flash measured in the same run, and the fraction of the floor
// (max(FLOPs / bf16 matmul rate, bytes / copy rate), both measured here). Then peak memory of one forward
// at batch 1 as N grows (linear for both linear and flash attention; the ATen reference too).
//
// usage: lit_bench_linear_attention [heads (default 4: LiT-XL/2's)] [repeats (default 30)] [breakdown-only]
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/bench/bench_util.h"
#include "kernels/linear_attention.h"
#include "kernels/linear_attention_cuda.h"
#include "kernels/runtime/cuda_support.h"
#include "kernels/runtime/torch_compat.h"

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace {

constexpr int64_t kDim = 1152;         // XL width
constexpr int64_t kSoftmaxHeads = 16;  // DiT-XL/2: 16 heads of 72
constexpr int64_t kTokensPerCall = 65536;
constexpr int kDwc = 5;

#ifdef LIT_WITH_CUDA
using lit::bench::time_cuda_ms;

struct Inputs {
  at::Tensor q, kv, k, v, w, b;  // linear attention, (B, N, D), k and v views into kv
  at::Tensor sq, sk, sv;         // softmax attention, (B, 16, N, 72)
};

Inputs make_inputs(int64_t B, int64_t N, int64_t heads, bool grad) {
  const auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  Inputs in;
  in.q = at::randn({B, N, kDim}, opts).requires_grad_(grad);
  in.kv = at::randn({B, N, 2 * kDim}, opts).requires_grad_(grad);
  in.k = in.kv.narrow(2, 0, kDim);
  in.v = in.kv.narrow(2, kDim, kDim);
  in.w = (at::randn({kDim / heads, 1, kDwc, kDwc}, opts) * 0.2).requires_grad_(grad);
  in.b = at::randn({kDim / heads}, opts).requires_grad_(grad);
  const int64_t d = kDim / kSoftmaxHeads;
  in.sq = at::randn({B, kSoftmaxHeads, N, d}, opts).requires_grad_(grad);
  in.sk = at::randn({B, kSoftmaxHeads, N, d}, opts).requires_grad_(grad);
  in.sv = at::randn({B, kSoftmaxHeads, N, d}, opts).requires_grad_(grad);
  return in;
}

int64_t grid_side(int64_t N) {
  int64_t g = 1;
  while (g * g < N) ++g;
  return g;
}

// Peak bytes allocated by fn() beyond what was allocated before it.
int64_t peak_extra_bytes(const std::function<void()>& fn) {
  using namespace c10::cuda::CUDACachingAllocator;
  at::cuda::device_synchronize();
  const int64_t before = getDeviceStats(0).allocated_bytes[0].current;
  resetPeakStats(0);
  fn();
  at::cuda::device_synchronize();
  return getDeviceStats(0).allocated_bytes[0].peak - before;
}

// Each kernel of the fused forward alone, versions side by side, at N = 256 x B = 256 (the largest state)
// and N = 4096 x B = 16.
void breakdown(int64_t heads, int repeats) {
  namespace cu = lit::kernels::cuda;
  std::printf("\nfused forward, kernel by kernel (ms)\n%6s %4s %7s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n", "N", "B",
              "splits", "state_v1", "state_v2", "apply_v1", "apply_v2", "apply_v3", "dwc_v1", "dwc_v2", "dwc_v3",
              "aten_dwc");
  for (const int64_t N : {256, 4096}) {
    const int64_t B = kTokensPerCall / N, g = grid_side(N), d = kDim / heads;
    const Inputs in = make_inputs(B, N, heads, false);
    const cu::Problem p{B, N, heads, d};
    const auto f32 = in.q.options().dtype(at::kFloat);
    void* stream = c10::cuda::getCurrentCUDAStream().stream();
    cu::StateArgs sa;
    sa.x = {in.k.data_ptr(), in.k.stride(1)};
    sa.x_transform = cu::Transform::Phi;
    sa.y = {in.v.data_ptr(), in.v.stride(1)};
    double t_state[2];
    int splits = 0;
    for (int version : {1, 2}) {
      sa.version = version;
      splits = cu::state_splits(p, sa);
      at::Tensor state = at::empty({splits, B * heads, d, d}, f32), m = at::empty({splits, B * heads, d}, f32);
      sa.state = state.data_ptr<float>();
      sa.colsum = m.data_ptr<float>();
      t_state[version - 1] =
          time_cuda_ms([&] { cu::linear_attention_state(cu::DType::BF16, p, sa, stream); }, 3, repeats);
    }
    const at::Tensor state = at::randn({B * heads, d, d}, f32) * 0.05, m = at::rand({B * heads, d}, f32);
    const at::Tensor hi = state.to(at::kBFloat16), lo = (state - hi.to(at::kFloat)).to(at::kBFloat16);
    at::Tensor out = at::empty({B, N, kDim}, in.q.options());
    double t_apply[3];
    for (int version : {1, 2, 3}) {
      cu::ApplyArgs aa;
      aa.a = {in.q.data_ptr(), in.q.stride(1)};
      aa.a_transform = cu::Transform::Phi;
      aa.s = state.data_ptr<float>();
      if (version > 1) aa.s_hi = hi.data_ptr();
      if (version == 2) aa.s_lo = lo.data_ptr();
      aa.z_m = m.data_ptr<float>();
      aa.out = out.data_ptr();
      aa.out_row_stride = kDim;
      t_apply[version - 1] =
          time_cuda_ms([&] { cu::linear_attention_apply(cu::DType::BF16, p, aa, stream); }, 3, repeats);
    }
    const at::Tensor w = in.w.to(at::kFloat).reshape({d, kDwc * kDwc}).t().contiguous(), b = in.b.to(at::kFloat);
    double t_dwc[3];
    for (int version : {1, 2, 3}) {
      cu::DwcArgs da;
      da.v = {in.v.data_ptr(), in.v.stride(1)};
      da.weight = w.data_ptr<float>();
      da.bias = b.data_ptr<float>();
      da.grid_h = g;
      da.grid_w = N / g;
      da.out = out.data_ptr();
      da.out_row_stride = kDim;
      da.version = version;
      t_dwc[version - 1] = time_cuda_ms([&] { cu::depthwise_conv_tokens(cu::DType::BF16, p, da, stream); }, 3, repeats);
    }
    const at::Tensor v_img = in.v.reshape({B, N, heads, d}).permute({0, 2, 3, 1}).reshape({B * heads, d, g, N / g});
    const double t_aten_dwc = time_cuda_ms([&] { at::conv2d(v_img, in.w, in.b, 1, kDwc / 2, 1, d); }, 3, repeats);
    std::printf("%6lld %4lld %7d %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f %9.3f\n", (long long)N, (long long)B,
                splits, t_state[0], t_state[1], t_apply[0], t_apply[1], t_apply[2], t_dwc[0], t_dwc[1], t_dwc[2],
                t_aten_dwc);
  }
  std::printf("(apply_v3 = v2 with the state's low part left out; the state_v2 column writes float32 partials)\n");
}

void run(int64_t heads, int repeats) {
  const int64_t d = kDim / heads;
  const double bw = lit::bench::copy_rate_gbs(), rate = lit::bench::matmul_rate_tflops(at::kCUDA, at::kBFloat16, 8192);
  std::printf("linear attention benchmark: D %lld, %lld heads of %lld (LiT), softmax 16 x 72 (DiT); B*N = %lld\n",
              (long long)kDim, (long long)heads, (long long)d, (long long)kTokensPerCall);
  std::printf("%s; measured ceilings: copy %.0f GB/s, bf16 matmul %.0f TFLOP/s; median of %d runs\n",
              lit::kernels::cuda_summary().c_str(), bw, rate, repeats);

  for (const bool training : {false, true}) {
    std::printf("\n%s\n", training ? "forward + backward (training; the fused kernels + ATen's convolution backward)"
                                   : "forward (inference, no autograd)");
    std::printf("%6s %4s %10s %10s %10s %10s %10s %10s %10s %9s %9s %9s %9s\n", "N", "B", "aten_ref", "fused_v1",
                "fused_v2", "fused_v3", "comp_lin", "comp_quad", "flash", "vs_ref", "vs_flash", "floor", "of_floor");
    for (const int64_t N : {256, 1024, 4096, 16384}) {
      const int64_t B = kTokensPerCall / N, g = grid_side(N);
      const Inputs in = make_inputs(B, N, heads, training);
      const at::Tensor grad = at::randn({B, N, kDim}, in.q.options().requires_grad(false));
      const at::Tensor sgrad = at::randn_like(in.sq).detach();
      auto zero_grads = [&] {
        for (at::Tensor t : {in.q, in.kv, in.w, in.b, in.sq, in.sk, in.sv})
          if (t.grad().defined()) t.mutable_grad().reset();
      };
      auto ref = [&] {
        at::Tensor o = lit::kernels::linear_attention_reference(in.q, in.k, in.v, heads, in.w, in.b, g, N / g);
        if (training) o.backward(grad);
      };
      auto fused = [&](int version) {
        if (training) {  // the training path takes the default version
          lit::kernels::linear_attention(in.q, in.k, in.v, heads, in.w, in.b, g, N / g).backward(grad);
        } else {
          lit::kernels::linear_attention_cuda(in.q, in.k, in.v, heads, in.w, in.b, g, N / g, version);
        }
      };
      auto flash = [&] {
        at::Tensor o = lit::compat::scaled_dot_product_attention(in.sq, in.sk, in.sv);
        if (training) o.backward(sgrad);
      };
      const at::AutoGradMode grad_mode(training);
      const double ref_ms = time_cuda_ms(
          [&] {
            ref();
            zero_grads();
          },
          3, repeats);
      double fused_ms[3] = {0, 0, 0};
      for (int version : {1, 2, 3}) {
        if (training && version != 2) continue;
        fused_ms[version - 1] = time_cuda_ms(
            [&] {
              fused(version);
              zero_grads();
            },
            3, repeats);
      }
      // The composed forms (inference only); the quadratic one only where its N x N scores stay small.
      double comp_ms[2] = {0, 0};
      for (const auto form : {lit::kernels::ComposedForm::Linear, lit::kernels::ComposedForm::Quadratic}) {
        const bool quadratic = form == lit::kernels::ComposedForm::Quadratic;
        if (training || (quadratic && N > 1024)) continue;
        comp_ms[quadratic ? 1 : 0] = time_cuda_ms(
            [&] { lit::kernels::linear_attention_composed(in.q, in.k, in.v, heads, in.w, in.b, g, N / g, form); }, 3,
            repeats);
      }
      const double flash_ms = time_cuda_ms(
          [&] {
            flash();
            zero_grads();
          },
          3, repeats);
      // Floor of the fused kernels: both products (2 N d^2 multiply-adds per head each, 3x that for the
      // backward's products) + the convolution, against q, k, v read and o written once (x2 for training).
      const double tokens = static_cast<double>(B * N);
      const double flops = (training ? 3.0 : 1.0) * (4.0 * tokens * kDim * d + 2.0 * kDwc * kDwc * tokens * kDim);
      const double bytes = (training ? 2.0 : 1.0) * 4.0 * tokens * kDim * 2.0;
      const double floor_ms = std::max(flops / rate / 1e9, bytes / bw / 1e6);
      const double best = fused_ms[1];
      // Versions not timed (training times the default only) print as "-".
      char v1[16] = "-", v3[16] = "-", lin[16] = "-", quad[16] = "-";
      if (fused_ms[0] > 0) std::snprintf(v1, sizeof v1, "%.3f", fused_ms[0]);
      if (fused_ms[2] > 0) std::snprintf(v3, sizeof v3, "%.3f", fused_ms[2]);
      if (comp_ms[0] > 0) std::snprintf(lin, sizeof lin, "%.3f", comp_ms[0]);
      if (comp_ms[1] > 0) std::snprintf(quad, sizeof quad, "%.3f", comp_ms[1]);
      std::printf("%6lld %4lld %10.3f %10s %10.3f %10s %10s %10s %10.3f %8.2fx %8.2fx %9.3f %8.0f%%\n", (long long)N,
                  (long long)B, ref_ms, v1, fused_ms[1], v3, lin, quad, flash_ms, ref_ms / best, flash_ms / best,
                  floor_ms, 100.0 * floor_ms / best);
    }
  }

  std::printf("(times in ms; ratios and of_floor for fused_v2, the default; training rows time the default only)\n");
  std::printf(
      "\npeak memory of one forward at batch 1 (MiB beyond the inputs; linear in N means constant per token)\n");
  std::printf("%6s %12s %12s %12s %12s %16s\n", "N", "aten_ref", "fused", "composed", "flash", "fused_B/token");
  const at::NoGradGuard no_grad;
  for (const int64_t N : {1024, 4096, 16384, 65536}) {
    const int64_t g = grid_side(N);
    const Inputs in = make_inputs(1, N, heads, false);
    const double mib = 1024.0 * 1024.0;
    const int64_t r = peak_extra_bytes(
        [&] { lit::kernels::linear_attention_reference(in.q, in.k, in.v, heads, in.w, in.b, g, N / g); });
    const int64_t f =
        peak_extra_bytes([&] { lit::kernels::linear_attention_cuda(in.q, in.k, in.v, heads, in.w, in.b, g, N / g); });
    const int64_t c = peak_extra_bytes(
        [&] { lit::kernels::linear_attention_composed(in.q, in.k, in.v, heads, in.w, in.b, g, N / g); });
    const int64_t s = peak_extra_bytes([&] { lit::compat::scaled_dot_product_attention(in.sq, in.sk, in.sv); });
    std::printf("%6lld %12.1f %12.1f %12.1f %12.1f %16.1f\n", (long long)N, r / mib, f / mib, c / mib, s / mib,
                static_cast<double>(f) / static_cast<double>(N));
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const int64_t heads = argc > 1 ? std::atoll(argv[1]) : 4;
  const int repeats = argc > 2 ? std::atoi(argv[2]) : 30;
  if (heads <= 0 || kDim % heads != 0) {
    std::fprintf(stderr, "lit_bench_linear_attention: heads must divide %lld\n", (long long)kDim);
    return 2;
  }
  if (!lit::kernels::cuda_available()) {
    std::printf("linear attention benchmark: %s; nothing to time (the fused kernels are CUDA-only)\n",
                lit::kernels::cuda_summary().c_str());
    return 0;
  }
#ifdef LIT_WITH_CUDA
  const at::NoGradGuard no_grad;
  breakdown(heads, repeats);
  if (argc > 3) return 0;  // breakdown only
  run(heads, repeats);
#else
  (void)repeats;
#endif
  return 0;
}
