// lit bench forward: the time of one backbone forward pass (DiTImpl::forward on random latents, timesteps and
// labels; random weights, eval mode, no autograd) per batch, for several presets at several image sizes. Each
// row reports ms per batch and per image, the FLOP rate, its fraction of the matrix-multiply rate measured in
// the same process (the hardware floor), the ratio to the first preset at the same size, and the peak CUDA
// memory. The defaults (DiT-XL/2 and LiT-XL/2 at 256, 512 and 1024 px) are sized for a GPU. With several
// --attention values, each linear-attention preset runs once per implementation (kernels::AttentionImpl).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/DeviceGuard.h>

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/format.h"
#include "kernels/bench/bench_util.h"
#include "kernels/execution.h"
#include "kernels/runtime/cuda_support.h"
#include "model/backbone/cuda_graph_forward.h"
#include "model/backbone/dit.h"
#include "tools/cli/bench_common.h"
#include "tools/cli/commands.h"

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace lit::cli {
namespace {

struct ForwardBenchOptions {
  std::vector<std::string> presets = {"DiT-XL/2", "LiT-XL/2"};
  std::vector<int64_t> image_sizes = {256, 512, 1024};
  std::vector<int64_t> batch_sizes;  // one per image size, or one for all; empty: default_batch_size
  std::string device = "auto";
  std::string dtype = "bf16";
  int repeats = 20;
  int warmup = 5;
  bool cuda_graphs = false;                        // replay the forward from a CUDA graph (model/cuda_graph_forward.h)
  std::vector<std::string> attentions = {"auto"};  // linear attention's implementations, one row each
};

// 32 images at 256 px, 16 at 512, 4 above: about what DiT-XL/2 runs in comfortably on one large GPU.
int64_t default_batch_size(int64_t image_size) {
  return image_size <= 256 ? 32 : image_size <= 512 ? 16 : 4;
}

std::string first_line(const std::string& text) {
  return text.substr(0, text.find('\n'));
}

// ---------------------------------------------------------------------------------------------------------
// One row: build the model, time its forward, measure its memory
// ---------------------------------------------------------------------------------------------------------
struct RowResult {
  double ms = 0;         // median milliseconds per batch
  double peak_mib = -1;  // peak CUDA memory allocated during the timed calls (weights included); -1 on CPU
};

RowResult time_forward(const ModelConfig& config, int64_t batch, const at::Device& device, at::ScalarType dtype,
                       const ForwardBenchOptions& o, kernels::AttentionImpl attention) {
  const at::NoGradGuard no_grad;
  DiT model(config, at::TensorOptions().device(device).dtype(dtype), /*initialize=*/true);
  kernels::ExecutionOptions execution;
  execution.attention = attention;
  execution.cuda_graphs = o.cuda_graphs;
  model->set_execution(execution);
  // DiT's initialisation zeroes adaLN and the final layer (the blocks would be identities): perturb, as
  // `lit bench generate` does, so every operator does its real work.
  for (auto& p : model->parameters()) p.add_(at::randn_like(p) * 0.02);
  model->eval();

  const auto opts = at::TensorOptions().device(device);
  const at::Tensor x = at::randn({batch, config.in_channels, config.input_size, config.input_size}, opts.dtype(dtype));
  const at::Tensor t = at::randint(0, 1000, {batch}, opts.dtype(at::kLong));
  const at::Tensor y = at::randint(0, config.num_classes, {batch}, opts.dtype(at::kLong));
  const auto model_forward = graphed_forward(model, o.cuda_graphs && device.is_cuda());
  const std::function<void()> forward = [&] { model_forward(x, t, y); };

  RowResult r;
#ifdef LIT_WITH_CUDA
  if (device.is_cuda()) {
    namespace alloc = c10::cuda::CUDACachingAllocator;
    synchronize(device);
    alloc::resetPeakStats(device.index());
    r.ms = bench::time_cuda_ms(forward, o.warmup, o.repeats);
    r.peak_mib = static_cast<double>(alloc::getDeviceStats(device.index()).allocated_bytes[0].peak) / (1 << 20);
    return r;
  }
#endif
  r.ms = bench::time_cpu_ms(forward, o.warmup, o.repeats);
  return r;
}

void release_cached_memory(const at::Device& device) {
#ifdef LIT_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  (void)device;
}

// ---------------------------------------------------------------------------------------------------------
// The command
// ---------------------------------------------------------------------------------------------------------
void run_bench_forward(ForwardBenchOptions o, bool presets_given) {
  // Everything the user can get wrong is checked before anything runs, so a mistake is one line.
  at::Device device = kernels::parse_device(o.device);
  if (device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, 0);
  if (device.is_cpu() && !presets_given)
    throw Error(
        "the default presets (DiT-XL/2, LiT-XL/2 at up to 1024 px) are sized for a GPU: on the CPU name small ones, "
        "e.g. --preset DiT-S/8 --preset LiT-S/8 --image-size 256 --batch-size 1");
  const at::ScalarType dtype = parse_dtype(o.dtype);
  if (o.repeats < 1) throw Error("--repeats must be at least 1, got " + std::to_string(o.repeats));
  if (o.warmup < 0) throw Error("--warmup must be 0 or more, got " + std::to_string(o.warmup));
  if (o.presets.empty() || o.image_sizes.empty()) throw Error("nothing to run: no --preset or no --image-size");
  if (o.batch_sizes.empty()) {
    for (int64_t px : o.image_sizes) o.batch_sizes.push_back(default_batch_size(px));
  } else if (o.batch_sizes.size() == 1) {
    o.batch_sizes.assign(o.image_sizes.size(), o.batch_sizes[0]);
  } else if (o.batch_sizes.size() != o.image_sizes.size()) {
    throw Error("--batch-size: give one value, or one per --image-size (" + std::to_string(o.image_sizes.size()) +
                "), got " + std::to_string(o.batch_sizes.size()));
  }
  for (int64_t b : o.batch_sizes)
    if (b < 1) throw Error("--batch-size must be at least 1, got " + std::to_string(b));
  for (int64_t px : o.image_sizes)
    for (const auto& name : o.presets) ModelConfig::preset(name, px);  // throws for an unknown name or size

  const c10::DeviceGuard device_guard(device);  // CUDA events and memory statistics on this device
  double floor = 0;
  try {
    floor = matmul_rate(device, dtype);
  } catch (const c10::Error& e) {  // e.g. fp16 matrix products on the CPU
    throw Error("--dtype " + o.dtype + " on " + device.str() + ": " + first_line(e.what_without_backtrace()));
  }
  std::printf(
      "lit bench forward: one backbone forward per batch (random weights, eval, no grad), %s on %s; %s%s; "
      "median of %d runs after %d warm-up\n",
      o.dtype.c_str(), device.str().c_str(), kernels::cuda_summary().c_str(),
      device.is_cuda() && o.cuda_graphs ? ", CUDA graphs" : "", o.repeats, o.warmup);
  std::printf(
      "floor: %s %lld^3 matrix multiply measured here, %.2f TFLOP/s; of_floor = TFLOP/s over it "
      "(forward FLOPs x batch / time, 2 FLOPs per multiply-add); vs_first = the first preset's time at "
      "the same size over this row's\n",
      o.dtype.c_str(), static_cast<long long>(matmul_rate_side(device)), floor);
  std::printf("%-20s %5s %7s %6s %11s %10s %9s %9s %9s %9s\n", "preset", "px", "tokens", "batch", "ms/batch",
              "ms/image", "TFLOP/s", "of_floor", "vs_first", "peak_MiB");
  for (size_t i = 0; i < o.image_sizes.size(); ++i) {
    const int64_t px = o.image_sizes[i], batch = o.batch_sizes[i];
    double first_ms = 0;  // 0: the first preset has not run (or failed) at this size
    for (size_t k = 0; k < o.presets.size(); ++k) {
      const ModelConfig config = ModelConfig::preset(o.presets[k], px);
      // Softmax presets run once; linear ones once per --attention (labelled when there is a choice).
      const size_t variants = config.is_linear() ? o.attentions.size() : 1;
      for (size_t a = 0; a < variants; ++a) {
        const std::string label =
            o.presets[k] + (config.is_linear() && o.attentions.size() > 1 ? ":" + o.attentions[a] : "");
        std::printf("%-20s %5lld %7lld %6lld ", label.c_str(), static_cast<long long>(px),
                    static_cast<long long>(config.num_patches()), static_cast<long long>(batch));
        std::fflush(stdout);
        RowResult r;
        std::string error;
        try {
          const kernels::AttentionImpl impl =
              kernels::parse_attention_impl(config.is_linear() ? o.attentions[a] : "auto");
          r = time_forward(config, batch, device, dtype, o, impl);
        } catch (const c10::Error& e) {
          error = first_line(e.what_without_backtrace());
        } catch (const std::exception& e) {
          error = first_line(e.what());
        }
        if (!error.empty()) {
          release_cached_memory(device);
          std::printf("error: %s\n", error.c_str());
          continue;
        }
        if (k == 0 && a == 0) first_ms = r.ms;
        const double tflops = forward_flops(config) * static_cast<double>(batch) / (r.ms * 1e-3) / 1e12;
        std::printf("%11.2f %10.3f %9.2f %8.1f%% ", r.ms, r.ms / static_cast<double>(batch), tflops,
                    100.0 * tflops / floor);
        if (first_ms > 0)
          std::printf("%8.2fx ", first_ms / r.ms);
        else
          std::printf("%9s ", "-");
        if (r.peak_mib >= 0)
          std::printf("%9.0f\n", r.peak_mib);
        else
          std::printf("%9s\n", "-");
        std::fflush(stdout);
      }
    }
  }
}

}  // namespace

void add_bench_forward_command(CLI::App* bench) {
  static ForwardBenchOptions o;
  static CLI::Option* preset_option = nullptr;
  auto* fwd = bench->add_subcommand(
      "forward",
      "Backbone forward time per preset and image size (defaults are GPU-sized: DiT-XL/2 and LiT-XL/2, "
      "256/512/1024 px)");
  preset_option = fwd->add_option("--preset", o.presets, "architecture, repeatable; the first is the ratio's baseline")
                      ->capture_default_str();
  fwd->add_option("--image-size", o.image_sizes, "image size in pixels (latents are /8), repeatable")
      ->capture_default_str();
  fwd->add_option("--batch-size", o.batch_sizes,
                  "images per batch: one value per --image-size, or one for all (default: 32 at 256 px, 16 at 512, "
                  "4 above)");
  fwd->add_option("--device", o.device, "cpu or cuda[:N] (default: cuda when available; on the CPU name --preset)")
      ->capture_default_str();
  fwd->add_option("--dtype", o.dtype, "fp32, bf16 or fp16 (weights and inputs)")->capture_default_str();
  fwd->add_option("--repeats", o.repeats, "timed runs (median reported)")->capture_default_str();
  fwd->add_option("--warmup", o.warmup, "untimed runs first")->capture_default_str();
  fwd->add_flag("--cuda-graphs", o.cuda_graphs,
                "replay the forward from a CUDA graph (experimental: not yet verified on a GPU)");
  fwd->add_option("--attention", o.attentions, std::string(kAttentionHelp) + "; repeatable, a row each")
      ->check(CLI::IsMember({"auto", "composed", "reference"}))
      ->capture_default_str();
  fwd->callback([] { run_bench_forward(o, preset_option->count() > 0); });
}

}  // namespace lit::cli
