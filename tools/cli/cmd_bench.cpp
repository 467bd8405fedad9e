// lit bench generate: sampling throughput of a model (images/s, model evaluations/s), the median of repeated
// runs, against an fp32 baseline measured in the same process, and as a fraction of the matrix-multiply rate
// measured on the same device (the hardware floor of a transformer forward).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <vector>

#include "kernels/runtime/cuda_support.h"
#include "model/backbone/cuda_graph_forward.h"
#include "model/backbone/model_io.h"
#include "model/vae/vae.h"
#include "sampler/generation.h"
#include "tools/cli/bench_common.h"
#include "tools/cli/commands.h"
#include "common/error.h"
#include "common/format.h"
#include "weights/image_io.h"

namespace lit::cli {
namespace {

struct BenchOptions {
  std::string model;
  std::string preset = "LiT-S/2";  // random weights when no --model
  int64_t image_size = 256;
  int64_t batch_size = 8;
  int64_t steps = 25;
  std::string sampler = "ddim";
  double cfg_scale = 4.0;
  std::string device = "cpu";
  std::vector<std::string> dtypes = {"fp32"};
  int repeats = 3;
  bool cuda_graphs = false;
  std::string vae;      // decode each batch with this VAE (folder or weights file)
  bool decode = false;  // decode with Stable Diffusion's VAE architecture, random weights
};

// The VAE the end-to-end rows decode with, in the dtype lit generate uses for it (vae_dtype_for). None when
// neither --vae nor --decode is given.
std::optional<AutoencoderKL> bench_vae(const BenchOptions& o, const at::Device& device, at::ScalarType model_dtype) {
  const at::ScalarType dtype = vae_dtype_for(model_dtype);
  if (!o.vae.empty()) {
    VaeLoadOptions vo;
    vo.device = device;
    vo.dtype = dtype;
    return load_vae(o.vae, vo);
  }
  if (!o.decode) return std::nullopt;
  AutoencoderKL vae{VaeConfig{}};  // sd-vae-ft-ema's architecture; its weights do not change the time
  const auto opts = at::TensorOptions().device(device).dtype(dtype);
  vae.visit([&](const std::string&, at::Tensor& t) { t = at::randn(t.sizes(), opts) * 0.02; });
  vae.set_source("random-weight SD VAE");
  return vae;
}

void run_bench(const BenchOptions& o) {
  const at::Device device = kernels::parse_device(o.device);
  std::printf("lit bench generate: %s, batch %lld, %s %lld steps, cfg %.2f, %s%s; median of %d runs\n",
              o.model.empty() ? (o.preset + " (random weights)").c_str() : o.model.c_str(),
              static_cast<long long>(o.batch_size), o.sampler.c_str(), static_cast<long long>(o.steps), o.cfg_scale,
              kernels::cuda_summary().c_str(),
              device.is_cuda() ? (o.cuda_graphs ? ", CUDA graphs" : ", no CUDA graphs") : "", o.repeats);
  std::printf("%-6s %12s %10s %12s %12s %10s %12s%s\n", "dtype", "s/batch", "images/s", "evals/s", "TFLOP/s",
              "of_matmul", "vs_first", !o.vae.empty() || o.decode ? "   decode_s" : "");
  double baseline = 0;
  for (const auto& dtype_name : o.dtypes) {
    const at::ScalarType dtype = parse_dtype(dtype_name);
    ModelConfig config;
    DiT model{nullptr};
    if (!o.model.empty()) {
      ModelLoadOptions lo;
      lo.device = device;
      lo.dtype = dtype;
      LoadedModel loaded = load_model(o.model, lo);
      config = loaded.config;
      model = loaded.model;
    } else {
      config = ModelConfig::preset(o.preset, o.image_size);
      model = DiT(config, at::TensorOptions().device(device).dtype(dtype), /*initialize=*/true);
      // DiT's initialisation zeroes adaLN and the final layer (the output would be 0): perturb for realism.
      const at::NoGradGuard no_grad;
      for (auto& p : model->parameters()) p.add_(at::randn_like(p) * 0.02);
      model->eval();
    }
    // With --cuda-graphs: one CUDA graph per batch shape on the GPU (model/cuda_graph_forward.h).
    const ClassConditionalFn forward =
        graphed_forward(model, o.cuda_graphs && device.is_cuda(),
                        [](const std::string& m) { std::fprintf(stderr, "lit bench: %s\n", m.c_str()); });
    SamplingSettings s;
    s.sampler = o.sampler;
    s.steps = o.steps;
    s.learn_sigma = config.learn_sigma;
    s.guidance.scale = o.cfg_scale;
    s.guidance.null_class = config.num_classes;
    const SampleShape shape{config.in_channels, config.input_size, config.input_size};
    std::vector<int64_t> labels(static_cast<size_t>(o.batch_size));
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int64_t>(i) % config.num_classes;
    const at::Tensor y = at::tensor(labels, at::kLong);
    const std::optional<AutoencoderKL> vae = bench_vae(o, device, dtype);
    if (vae && vae->latent_channels() != config.in_channels)
      throw Error("--vae/--decode: the VAE has " + std::to_string(vae->latent_channels()) +
                  " latent channels, the model " + std::to_string(config.in_channels));
    // One batch end to end: sampling, then (with a VAE) decoding and the 8-bit images on the CPU, as lit
    // generate makes them before writing files. Returns the decoding's share in seconds.
    auto run_batch = [&](uint64_t seed) {
      const at::Tensor latents = sample_batch(forward, shape, y, seed, 0, s, device);
      if (!vae) return 0.0;
      synchronize(device);
      const auto t0 = std::chrono::steady_clock::now();
      const at::NoGradGuard no_grad;
      images_to_uint8(vae->decode(vae->from_model_space(latents.to(vae->dtype()))));
      return seconds_since(t0);
    };
    run_batch(0);  // warm-up
    synchronize(device);
    std::vector<double> times, decode_times;
    for (int r = 0; r < o.repeats; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      decode_times.push_back(run_batch(static_cast<uint64_t>(r + 1)));
      synchronize(device);
      times.push_back(seconds_since(t0));
    }
    std::sort(times.begin(), times.end());
    std::sort(decode_times.begin(), decode_times.end());
    const double t = times[times.size() / 2], t_decode = decode_times[decode_times.size() / 2];
    const double evals =
        static_cast<double>(o.steps) * static_cast<double>(o.batch_size) * (o.cfg_scale != 1.0 ? 2 : 1);
    const double tflops = forward_flops(config) * evals / t / 1e12;
    const double peak = matmul_rate(device, dtype);
    if (baseline == 0) baseline = t;
    std::printf("%-6s %12.3f %10.2f %12.1f %12.2f %9.1f%% %11.2fx", dtype_name.c_str(), t,
                static_cast<double>(o.batch_size) / t, evals / t, tflops, 100.0 * tflops / peak, baseline / t);
    if (vae) std::printf(" %10.3f", t_decode);
    std::printf("\n");
  }
  if (!o.vae.empty() || o.decode)
    std::printf(
        "(end to end: s/batch includes decoding with the VAE and the 8-bit images on the CPU; decode_s is "
        "that part; TFLOP/s and of_matmul count the diffusion model only)\n");
  std::printf(
      "(evals/s counts image-forwards: steps x batch x 2 with guidance; of_matmul = model TFLOP/s over the "
      "%lld^3 matrix-multiply rate measured here)\n",
      static_cast<long long>(matmul_rate_side(device)));
}

}  // namespace

void add_bench_command(CLI::App& app) {
  static BenchOptions o;
  auto* bench = app.add_subcommand("bench", "Benchmarks (not tests): throughput and fraction of the hardware floor");
  auto* gen = bench->add_subcommand("generate", "Sampling throughput of a model: images/s and model evaluations/s");
  bench->require_subcommand(1);
  gen->add_option("--model", o.model, "checkpoint (default: a preset with random weights)");
  gen->add_option("--preset", o.preset, "architecture when no --model: DiT-XL/2, LiT-XL/2, ...")->capture_default_str();
  gen->add_option("--image-size", o.image_size, "image size for --preset (a multiple of 8: 256, 512, 1024)")
      ->capture_default_str();
  gen->add_option("--batch-size", o.batch_size, "images per batch")->capture_default_str();
  gen->add_option("--steps", o.steps, "sampling steps")->capture_default_str();
  gen->add_option("--sampler", o.sampler, "ddpm, ddim or dpm++2m")->capture_default_str();
  gen->add_option("--cfg-scale", o.cfg_scale, "guidance scale (1: no unconditional half)")->capture_default_str();
  gen->add_option("--device", o.device, "cpu or cuda[:N]")->capture_default_str();
  gen->add_option("--dtype", o.dtypes, "one or more of fp32, bf16, fp16; the first is the baseline")
      ->capture_default_str();
  gen->add_option("--repeats", o.repeats, "timed runs (median reported)")->capture_default_str();
  gen->add_option("--vae", o.vae, "end to end: also decode each batch with this VAE (folder or weights file)");
  gen->add_flag("--decode", o.decode,
                "end to end: also decode each batch with Stable Diffusion's VAE architecture (random weights)");
  gen->add_flag("--cuda-graphs", o.cuda_graphs,
                "replay a CUDA graph of the forward per batch shape (experimental: not yet verified on a GPU)");
  gen->callback([] { run_bench(o); });
  add_bench_forward_command(bench);
}

}  // namespace lit::cli
