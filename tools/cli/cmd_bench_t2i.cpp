// lit bench t2i: text-to-image sampling time per image, PixArt-Σ-XL/2 against LiT-T2I-XL/2 in the same run.
// Random weights (the official initialisation, bf16 by default, CUDA), random caption features of the text
// encoder's width (4096 for T5-XXL) with `--tokens` real tokens of the model's 300 (the mask), the null caption
// paired with that mask, and PixArt's DPM-Solver++ (order 2, time-uniform, --steps 20) with guidance over the
// doubled batch (--cfg 4.5): what `lit generate` runs for a text model, minus the VAE. Reports the time per
// image, the peak CUDA memory, and LiT-T2I / PixArt-Σ as a ratio per resolution. --t5 also times the T5
// encoder (T5-v1.1-XXL shape, random weights, the prompts at 300 positions; the null caption is cached by the
// pipeline and not counted) and reports the time per image with it included.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "kernels/bench/bench_util.h"
#include "kernels/runtime/cuda_support.h"
#include "model/t2i/pixart.h"
#include "model/t2i/pixart_io.h"
#include "model/text/t5_config.h"
#include "model/text/t5_encoder.h"
#include "sampler/dpm_solver_vp.h"
#include "sampler/text_guidance.h"
#include "tools/cli/bench_common.h"
#include "tools/cli/commands.h"

#ifdef LIT_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace lit::cli {
namespace {

struct T2IBenchOptions {
  std::vector<std::string> models = {"pixart", "lit"};
  std::vector<int64_t> sizes = {512, 1024};
  std::string config;  // a PixArt config JSON instead of PixArt-Sigma-XL/2 (its LiT-T2I counterpart for "lit")
  int64_t steps = 20;
  double cfg = 4.5;
  int64_t batch_size = 1;
  int64_t tokens = 120;  // real caption tokens (of model_max_length)
  bool t5 = false;
  std::string device = "cuda";
  std::string dtype = "bf16";
  int repeats = 3;
  int warmup = 1;
};

struct Row {
  std::string model;
  int64_t px = 0;
  double ms = 0, peak_mib = -1, t5_ms = -1;
  int64_t params = 0;
};

PixArtConfig config_for(const T2IBenchOptions& o, const std::string& model, int64_t px) {
  PixArtConfig c;
  if (o.config.empty()) {
    c = PixArtConfig::preset("PixArt-Sigma-XL/2", px);
  } else {
    c = PixArtConfig::from_json_file(o.config);
    if (px % (8 * c.patch_size) != 0) throw Error("--sizes: " + std::to_string(px) + " px does not fit the patches");
    c.pe_interpolation = c.pe_interpolation * static_cast<double>(px / 8) / static_cast<double>(c.input_size);
    c.input_size = px / 8;
  }
  if (model == "lit") return c.is_linear() ? c : lit_t2i_config_from_pixart(c);
  if (model == "pixart") {
    if (c.is_linear()) throw Error("--config: a LiT-T2I config; give the PixArt one (its LiT-T2I is derived)");
    return c;
  }
  throw Error("--models: '" + model + "' is neither pixart nor lit");
}

// The time of one call of fn (ms, median of repeats) and the peak memory it allocated (MiB; -1 on the CPU).
std::pair<double, double> measure(const std::function<void()>& fn, const at::Device& device, int warmup, int repeats) {
  double ms = 0, peak = -1;
#ifdef LIT_WITH_CUDA
  if (device.is_cuda()) {
    namespace alloc = c10::cuda::CUDACachingAllocator;
    synchronize(device);
    alloc::resetPeakStats(device.index());
    ms = bench::time_cuda_ms(fn, warmup, repeats);
    peak = static_cast<double>(alloc::getDeviceStats(device.index()).allocated_bytes[0].peak) / (1 << 20);
  }
#endif
  if (!device.is_cuda()) ms = bench::time_cpu_ms(fn, warmup, repeats);
  return {ms, peak};
}

void release_cached_memory(const at::Device& device) {
#ifdef LIT_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::emptyCache();
#endif
  (void)device;
}

double time_t5(const T2IBenchOptions& o, const at::Device& device, at::ScalarType dtype, int64_t max_length) {
  const text::T5Config config = text::T5Config::t5_v1_1_xxl();
  text::T5EncoderModel model(config);
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  model.visit([&](const std::string& name, at::Tensor& t) {
    if (name.find("layer_norm") != std::string::npos)
      t = at::ones(t.sizes(), opts);
    else if (t.dim() == 2 && name != "shared.weight" && name.find("relative_attention_bias") == std::string::npos)
      t = at::randn(t.sizes(), opts) * (1.0 / std::sqrt(static_cast<double>(t.size(1))));
    else
      t = at::randn(t.sizes(), opts) * 0.5;
  });
  const auto long_opts = at::TensorOptions().dtype(at::kLong);
  const at::Tensor ids = at::randint(3, 32000, {o.batch_size, max_length}, long_opts).to(device);
  at::Tensor mask = at::zeros({o.batch_size, max_length}, long_opts);
  mask.narrow(1, 0, o.tokens).fill_(1);
  mask = mask.to(device);
  const double ms = measure([&] { model.forward(ids, mask); }, device, o.warmup, o.repeats).first;
  return ms;
}

void run_bench_t2i(const T2IBenchOptions& o) {
  at::Device device = kernels::parse_device(o.device);
  if (device.is_cuda() && !kernels::cuda_available())
    throw Error("--device " + o.device + ": " + kernels::cuda_summary());
  if (device.is_cuda() && !device.has_index()) device = at::Device(at::kCUDA, 0);
  const at::ScalarType dtype = dtype_of(o.dtype);
  if (o.steps < 2 || o.batch_size < 1 || o.repeats < 1 || o.warmup < 0)
    throw Error("need --steps >= 2, --batch-size >= 1, --repeats >= 1, --warmup >= 0");
  const at::NoGradGuard no_grad;
  const auto f32 = at::TensorOptions().dtype(at::kFloat);
  std::vector<Row> rows;
  std::map<int64_t, double> t5_ms;
  for (int64_t px : o.sizes)
    for (const std::string& name : o.models) {
      const PixArtConfig config = config_for(o, name, px);
      if (o.tokens < 1 || o.tokens > config.model_max_length)
        throw Error("--tokens must be in [1, " + std::to_string(config.model_max_length) + "]");
      Row row;
      row.model = config.is_linear() ? "LiT-T2I" : "PixArt";
      row.px = px;
      {
        at::manual_seed(0);
        PixArtMS model(config, at::TensorOptions().dtype(dtype).device(device), /*initialize=*/true);
        model->eval();
        row.params = model->num_parameters();
        const int64_t L = config.model_max_length, C = config.caption_channels, s = config.input_size;
        TextCondition c;
        c.caption = (at::randn({o.batch_size, 1, L, C}, f32) * 0.1).to(device, dtype);
        c.mask = at::zeros({o.batch_size, L}, at::TensorOptions().dtype(at::kLong));
        c.mask.narrow(1, 0, o.tokens).fill_(1);
        c.mask = c.mask.to(device);
        c.null_caption = (at::randn({1, 1, L, C}, f32) * 0.1).to(device, dtype);
        c.scale = o.cfg;
        const TextConditionalFn eps = [&](const at::Tensor& x, const at::Tensor& t, const at::Tensor& y,
                                          const at::Tensor& mask) { return model->forward_eps(x, t, y, mask); };
        const NoiseFn fn = text_guided_noise_fn(eps, c);
        const NoiseScheduleVP schedule = NoiseScheduleVP::linear();
        DPMSolverOptions solver;
        solver.steps = o.steps;
        const at::Tensor noise = at::randn({o.batch_size, config.in_channels, s, s}, f32).to(device);
        const auto [ms, peak] =
            measure([&] { dpm_solver_sample(fn, schedule, noise, solver); }, device, o.warmup, o.repeats);
        row.ms = ms / static_cast<double>(o.batch_size);
        row.peak_mib = peak;
      }
      release_cached_memory(device);
      if (o.t5) {
        if (!t5_ms.count(config.model_max_length))
          t5_ms[config.model_max_length] = time_t5(o, device, dtype, config.model_max_length);
        row.t5_ms = t5_ms[config.model_max_length] / static_cast<double>(o.batch_size);
        release_cached_memory(device);
      }
      rows.push_back(row);
    }

  std::printf(
      "lit bench t2i: %s, random weights, %s on %s, batch %lld, %lld DPM-Solver++ steps with guidance %.2f "
      "(%lld model evaluations of a doubled batch), captions %lld real tokens; median of %d runs after %d warm-up\n",
      o.config.empty() ? "PixArt-Sigma-XL/2 and LiT-T2I-XL/2" : o.config.c_str(), o.dtype.c_str(), device.str().c_str(),
      static_cast<long long>(o.batch_size), static_cast<long long>(o.steps), o.cfg, static_cast<long long>(o.steps),
      static_cast<long long>(o.tokens), o.repeats, o.warmup);
  std::printf("%-8s %6s %8s %12s %12s %14s %10s\n", "model", "px", "params_M", "s/image", "T5_s/image", "with_T5_s/img",
              "peak_MiB");
  for (const Row& r : rows) {
    char t5[32] = "-", with[32] = "-", peak[32] = "-";
    if (r.t5_ms >= 0) {
      std::snprintf(t5, sizeof t5, "%.3f", r.t5_ms / 1e3);
      std::snprintf(with, sizeof with, "%.3f", (r.ms + r.t5_ms) / 1e3);
    }
    if (r.peak_mib >= 0) std::snprintf(peak, sizeof peak, "%.0f", r.peak_mib);
    std::printf("%-8s %6lld %8.1f %12.3f %12s %14s %10s\n", r.model.c_str(), static_cast<long long>(r.px),
                static_cast<double>(r.params) / 1e6, r.ms / 1e3, t5, with, peak);
  }
  for (int64_t px : o.sizes) {
    const Row *p = nullptr, *l = nullptr;
    for (const Row& r : rows)
      if (r.px == px) (r.model == "PixArt" ? p : l) = &r;
    if (!p || !l) continue;
    std::printf("ratio LiT-T2I / PixArt at %lld px: time %.3f", static_cast<long long>(px), l->ms / p->ms);
    if (p->t5_ms >= 0) std::printf(" (with T5 %.3f)", (l->ms + l->t5_ms) / (p->ms + p->t5_ms));
    if (p->peak_mib > 0) std::printf(", peak memory %.3f", l->peak_mib / p->peak_mib);
    std::printf("\n");
  }
}

}  // namespace

void add_bench_t2i_command(CLI::App& app) {
  CLI::App* bench = app.get_subcommand("bench");  // registered by add_bench_command
  auto* cmd = bench->add_subcommand(
      "t2i",
      "Text-to-image sampling time per image and peak memory: PixArt-Sigma-XL/2 vs LiT-T2I-XL/2 (random weights)");
  static T2IBenchOptions opt;
  cmd->add_option("--models", opt.models, "pixart, lit (both by default)")->delimiter(',')->capture_default_str();
  cmd->add_option("--sizes", opt.sizes, "image sides in pixels")->delimiter(',')->capture_default_str();
  cmd->add_option("--config", opt.config, "a PixArt config JSON instead of PixArt-Sigma-XL/2 (LiT-T2I derived)");
  cmd->add_option("--steps", opt.steps, "DPM-Solver++ steps")->capture_default_str();
  cmd->add_option("--cfg", opt.cfg, "guidance scale")->capture_default_str();
  cmd->add_option("--batch-size", opt.batch_size, "images per run")->capture_default_str();
  cmd->add_option("--tokens", opt.tokens, "real caption tokens (the rest is padding)")->capture_default_str();
  cmd->add_flag("--t5", opt.t5, "also time the T5-v1.1-XXL encoder (random weights) and report with it included");
  cmd->add_option("--device", opt.device, "cuda, cuda:N, cpu")->capture_default_str();
  cmd->add_option("--dtype", opt.dtype, "bf16, fp16, fp32")->capture_default_str();
  cmd->add_option("--repeats", opt.repeats, "timed runs (the median is reported)")->capture_default_str();
  cmd->add_option("--warmup", opt.warmup, "untimed runs first")->capture_default_str();
  cmd->callback([] { run_bench_t2i(opt); });
}

}  // namespace lit::cli
