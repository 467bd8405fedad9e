// lit bench text-encoder: the time of one T5 encoder forward (random weights, no autograd) on a batch of
// prompts, as PixArt-Σ encodes them (300 token positions each), and the peak CUDA memory. The default is the
// published T5-v1.1-XXL encoder's shape (4.76 B parameters) in bf16 on CUDA; tools/bench_t5.py times
// transformers' T5EncoderModel of the same shape, for comparison on the same GPU.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>

#include "common/error.h"
#include "kernels/bench/bench_util.h"
#include "kernels/runtime/cuda_support.h"
#include "model/text/t5_config.h"
#include "model/text/t5_encoder.h"
#include "tools/cli/bench_common.h"
#include "tools/cli/commands.h"

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace lit::cli {
namespace {

struct TextBenchOptions {
  std::string preset = "xxl";
  std::string config;  // a config.json instead of the preset
  int64_t batch_size = 16;
  int64_t max_length = 300;
  int64_t tokens = 300;  // real tokens per prompt (the rest padding)
  bool longest = false;  // run only the real tokens' positions (TextEncoder's kLongestPrompt)
  std::string device = "cuda";
  std::string dtype = "bf16";
  int repeats = 10;
  int warmup = 3;
};

text::T5Config preset_config(const std::string& name) {
  text::T5Config c = text::T5Config::t5_v1_1_xxl();
  if (name == "xxl") return c;
  if (name == "xl") {  // T5-v1.1-XL
    c.d_model = 2048, c.num_heads = 32, c.d_ff = 5120;
    return c;
  }
  if (name == "base") {  // T5-v1.1-base
    c.d_model = 768, c.num_heads = 12, c.d_ff = 2048, c.num_layers = 12;
    return c;
  }
  if (name == "small") {  // T5-v1.1-small
    c.d_model = 512, c.num_heads = 6, c.d_ff = 1024, c.num_layers = 8;
    return c;
  }
  throw Error("--preset '" + name + "': one of xxl, xl, base, small (T5-v1.1 encoders)");
}

// Multiply-adds of one prompt of L positions, x2: projections, attention products, feed-forward.
double encoder_flops(const text::T5Config& c, int64_t L) {
  const double d = static_cast<double>(c.d_model), inner = static_cast<double>(c.inner_dim());
  const double ff = static_cast<double>(c.d_ff) * (c.is_gated_act() ? 3 : 2);
  const double per_layer = static_cast<double>(L) * (4 * d * inner + ff * d) + 2.0 * L * L * inner;
  return 2.0 * per_layer * static_cast<double>(c.num_layers);
}

void run_bench_text_encoder(const TextBenchOptions& o) {
  at::Device device = kernels::parse_device(o.device);
  if (device.is_cuda() && !kernels::cuda_available())
    throw Error("--device " + o.device + ": " + kernels::cuda_summary());
  if (device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, 0);
  const at::ScalarType dtype = dtype_of(o.dtype);
  if (dtype == at::kHalf) throw Error("--dtype fp16: T5 overflows in fp16; use bf16 or fp32");
  if (o.batch_size < 1 || o.max_length < 1 || o.tokens < 1 || o.tokens > o.max_length)
    throw Error("need --batch-size >= 1 and 1 <= --tokens <= --max-length");
  if (o.repeats < 1 || o.warmup < 0) throw Error("need --repeats >= 1 and --warmup >= 0");
  const text::T5Config config = o.config.empty() ? preset_config(o.preset) : text::read_t5_config(o.config);

  const at::NoGradGuard no_grad;
  text::T5EncoderModel model(config);
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  // Random weights with T5's initialisation scales (values only matter for staying finite).
  model.visit([&](const std::string& name, at::Tensor& t) {
    if (name.find("layer_norm") != std::string::npos) {
      t = at::ones(t.sizes(), opts);
    } else if (t.dim() == 2 && name != "shared.weight" && name.find("relative_attention_bias") == std::string::npos) {
      t = at::randn(t.sizes(), opts) * (1.0 / std::sqrt(static_cast<double>(t.size(1))));
    } else {
      t = at::randn(t.sizes(), opts) * 0.5;
    }
  });
  const int64_t L = o.longest ? o.tokens : o.max_length;
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  const at::Tensor ids =
      at::randint(3, std::min<int64_t>(config.vocab_size, 32000), {o.batch_size, L}, long_opts).to(device);
  at::Tensor mask = at::zeros({o.batch_size, L}, long_opts);
  mask.narrow(1, 0, o.tokens).fill_(1);
  mask = mask.to(device);
  const std::function<void()> forward = [&] { model.forward(ids, mask); };

  double ms = 0, peak_mib = -1;
#ifdef LIT_WITH_CUDA
  if (device.is_cuda()) {
    namespace alloc = c10::cuda::CUDACachingAllocator;
    synchronize(device);
    alloc::resetPeakStats(device.index());
    ms = bench::time_cuda_ms(forward, o.warmup, o.repeats);
    peak_mib = static_cast<double>(alloc::getDeviceStats(device.index()).allocated_bytes[0].peak) / (1 << 20);
  }
#endif
  if (!device.is_cuda()) ms = bench::time_cpu_ms(forward, o.warmup, o.repeats);

  const double tflops = encoder_flops(config, L) * static_cast<double>(o.batch_size) / (ms * 1e-3) / 1e12;
  const double weights_mib =
      static_cast<double>(config.parameter_count()) * static_cast<double>(c10::elementSize(dtype)) / (1 << 20);
  std::printf(
      "lit bench text-encoder: T5 encoder (%s), %.2f B parameters (%.0f MiB), random weights, %s on %s; "
      "median of %d runs after %d warm-up\n",
      config.summary().c_str(), static_cast<double>(config.parameter_count()) / 1e9, weights_mib, o.dtype.c_str(),
      device.str().c_str(), o.repeats, o.warmup);
  std::printf("%-8s %6s %8s %9s %11s %11s %9s %10s\n", "impl", "batch", "tokens", "computed", "ms/batch", "ms/prompt",
              "TFLOP/s", "peak_MiB");
  char peak[32];
  if (peak_mib >= 0)
    std::snprintf(peak, sizeof peak, "%.0f", peak_mib);
  else
    std::snprintf(peak, sizeof peak, "-");
  std::printf("%-8s %6lld %8lld %9lld %11.2f %11.3f %9.2f %10s\n", "lit", static_cast<long long>(o.batch_size),
              static_cast<long long>(o.tokens), static_cast<long long>(L), ms, ms / static_cast<double>(o.batch_size),
              tflops, peak);
}

}  // namespace

void add_bench_text_encoder_command(CLI::App& app) {
  CLI::App* bench = app.get_subcommand("bench");  // registered by add_bench_command
  auto* cmd = bench->add_subcommand(
      "text-encoder", "T5 encoder forward time per prompt and peak memory (random weights; T5-v1.1-XXL by default)");
  static TextBenchOptions opt;
  cmd->add_option("--preset", opt.preset, "T5-v1.1 encoder shape: xxl, xl, base, small")->capture_default_str();
  cmd->add_option("--config", opt.config, "a T5 config.json instead of --preset");
  cmd->add_option("--batch-size", opt.batch_size, "prompts per forward")->capture_default_str();
  cmd->add_option("--max-length", opt.max_length, "token positions per prompt (PixArt-Sigma: 300)")
      ->capture_default_str();
  cmd->add_option("--tokens", opt.tokens, "real tokens per prompt (the rest is padding)")->capture_default_str();
  cmd->add_flag("--longest", opt.longest, "compute only the real tokens' positions (encode-text --longest)");
  cmd->add_option("--device", opt.device, "cuda, cuda:N, cpu")->capture_default_str();
  cmd->add_option("--dtype", opt.dtype, "bf16, fp32")->capture_default_str();
  cmd->add_option("--repeats", opt.repeats, "timed runs (the median is reported)")->capture_default_str();
  cmd->add_option("--warmup", opt.warmup, "untimed runs first")->capture_default_str();
  cmd->callback([] { run_bench_text_encoder(opt); });
}

}  // namespace lit::cli
