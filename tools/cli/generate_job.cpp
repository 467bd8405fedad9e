#include "tools/cli/generate_job.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "kernels/runtime/cuda_support.h"
#include "model/backbone/builtin_model.h"
#include "model/backbone/class_labels.h"
#include "model/backbone/cuda_graph_forward.h"
#include "model/backbone/model_io.h"
#include "model/vae/vae.h"
#include "sampler/generation.h"
#include "tools/cli/contact_sheet.h"
#include "tools/cli/progress.h"
#include "common/atomic_file.h"
#include "common/error.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"
#include "weights/latent_file.h"
#include "weights/npy.h"
#include "weights/zip_archive.h"

namespace fs = std::filesystem;

namespace lit::cli {
namespace {

constexpr const char* kManifestName = "run.json";
constexpr int64_t kMaxGridImages = 1024;

// ---------------------------------------------------------------------------------------------------------
// Argument checks (all before any model is loaded)
// ---------------------------------------------------------------------------------------------------------
at::Device parse_device(const std::string& text) {
  at::Device device = at::kCPU;
  try {
    device = at::Device(text);
  } catch (const c10::Error&) {
    throw Error("--device '" + text + "' is not a device: use cpu, cuda or cuda:N");
  }
  if (device.is_cuda()) {
    if (!kernels::cuda_available()) throw Error("--device " + text + ": " + kernels::cuda_summary());
    if (device.has_index() && device.index() >= static_cast<int>(at::detail::getCUDAHooks().getNumGPUs()))
      throw Error("--device " + text + ": no such GPU (this machine has " +
                  std::to_string(at::detail::getCUDAHooks().getNumGPUs()) + ")");
  } else if (!device.is_cpu()) {
    throw Error("--device '" + text + "': only cpu and cuda are supported");
  }
  return device;
}

at::ScalarType parse_dtype(const std::string& text) {
  if (text == "fp32" || text == "float32") return at::kFloat;
  if (text == "bf16" || text == "bfloat16") return at::kBFloat16;
  if (text == "fp16" || text == "float16") return at::kHalf;
  throw Error("--dtype '" + text + "': use fp32, bf16 or fp16");
}

void check_options(const GenerateOptions& o) {
  if (o.output.empty()) throw Error("-o/--output is required");
  if (o.num_images < 1) throw Error("-n/--num-images must be at least 1, got " + std::to_string(o.num_images));
  if (o.batch_size < 1) throw Error("--batch-size must be at least 1, got " + std::to_string(o.batch_size));
  if (!(o.cfg_scale >= 0) || !std::isfinite(o.cfg_scale))
    throw Error("--cfg-scale must be a number >= 0, got " + std::to_string(o.cfg_scale));
  if (o.size < 0) throw Error("--size must be positive");
  if (o.format != "png" && o.format != "jpg" && o.format != "webp")
    throw Error("--format '" + o.format + "': use png, jpg or webp");
  if (o.format != "png" && !can_write_image_format("x." + o.format))
    throw Error("--format " + o.format + ": " + image_codecs_summary());
  const int sources =
      (!o.classes.empty()) + (!o.classes_file.empty()) + (o.random_classes ? 1 : 0) + (o.all_classes ? 1 : 0);
  if (sources > 1) throw Error("--class, --classes-file, --random-classes and --all-classes exclude each other");
  if (o.grid.empty() && (o.grid_labels || o.grid_scale != 1 || o.grid_columns != 0))
    throw Error("--grid-labels, --grid-scale and --grid-columns need --grid FILE");
  if (o.grid_scale < 1 || o.grid_scale > 64)
    throw Error("--grid-scale must be 1..64, got " + std::to_string(o.grid_scale));
  if (o.grid_columns < 0) throw Error("--grid-columns must not be negative");
  if (o.grid_labels && !can_draw_captions())
    throw Error("--grid-labels: this build has no OpenCV imgproc to draw text (install libopencv-imgproc-dev)");
  SamplingSettings s;
  s.sampler = o.sampler;
  s.steps = o.steps;
  s.eta = o.eta;
  validate_sampling_settings(s);
  if (!o.grid.empty() && !can_write_image_format(o.grid))
    throw Error("--grid " + o.grid + ": unsupported image format (" + image_codecs_summary() + ")");
}

// The folder exists (created if needed) and accepts files.
void prepare_output_folder(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create output folder " + dir + ": " + ec.message());
  if (!fs::is_directory(dir)) throw Error("output " + dir + " is not a folder");
  const std::string probe = dir + "/.lit-write-test-" + std::to_string(::getpid());
  std::FILE* f = std::fopen(probe.c_str(), "wb");
  if (!f) throw Error("cannot write into output folder " + dir + ": " + std::strerror(errno));
  std::fclose(f);
  std::remove(probe.c_str());
}

std::string index_name(int64_t i, int64_t total) {
  const size_t digits = std::max<size_t>(6, std::to_string(total - 1).size());
  std::string name = std::to_string(i);
  return std::string(digits > name.size() ? digits - name.size() : 0, '0') + name;
}

std::vector<std::string> read_classes_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("--classes-file " + path + ": cannot open");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty() && line[0] != '#') out.push_back(line);
  }
  if (out.empty()) throw Error("--classes-file " + path + ": no classes in it");
  return out;
}

// Every image's label, fixed before sampling so that it never depends on batching.
std::vector<int64_t> resolve_labels(const GenerateOptions& o, const ModelConfig& config, const ClassNames& names) {
  const int64_t n = o.num_images;
  std::vector<int64_t> labels(static_cast<size_t>(n), config.num_classes);  // null class: unconditional
  std::vector<std::string> tokens = o.classes;
  if (!o.classes_file.empty()) tokens = read_classes_file(o.classes_file);
  if (!tokens.empty()) {
    std::vector<int64_t> ids;
    for (const auto& t : tokens) ids.push_back(parse_class(t, names));
    for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = ids[static_cast<size_t>(i) % ids.size()];
  } else if (o.all_classes) {
    for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = i % config.num_classes;
  } else if (o.random_classes) {
    // Its own generator, so the labels are the same whatever the batch size or resumption.
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed ^ 0x6c69742d636c6173ULL);
    const at::Tensor drawn = at::randint(config.num_classes, {n}, gen, at::TensorOptions().dtype(at::kLong));
    for (int64_t i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = drawn[i].item<int64_t>();
  } else if (!config.has_null_class()) {
    throw Error(
        "the model has no null class (class_dropout_prob 0), so it cannot generate unconditionally: "
        "pass --class or --random-classes");
  }
  return labels;
}

// ---------------------------------------------------------------------------------------------------------
// The run manifest: what must stay the same for --resume to continue a run
// ---------------------------------------------------------------------------------------------------------
nlohmann::json make_manifest(const GenerateOptions& o, const ModelConfig& config, const std::vector<int64_t>& labels,
                             int64_t image_size, bool latent_model) {
  nlohmann::json m;
  m["lit_version"] = LIT_VERSION;
  m["model"] = fs::absolute(o.model).lexically_normal().string();
  m["use_weights"] = o.use_weights;
  m["model_config"] = nlohmann::json::parse(config.to_json());
  m["vae"] = o.vae.empty() ? "" : fs::absolute(o.vae).lexically_normal().string();
  m["num_images"] = o.num_images;
  m["seed"] = o.seed;
  m["labels"] = labels;
  m["sampler"] = o.sampler;
  m["steps"] = o.steps;
  m["eta"] = o.eta;
  m["cfg_scale"] = o.cfg_scale;
  m["guidance_channels"] = o.cfg_all_channels ? "all" : "dit";
  m["dtype"] = o.dtype;
  m["image_size"] = image_size;
  m["latent_model"] = latent_model;
  m["format"] = o.format;
  m["init_noise"] = o.init_noise.empty() ? "" : fs::absolute(o.init_noise).lexically_normal().string();
  m["save_latents"] = !o.save_latents.empty();
  return m;
}

// Settings that may change between a run and its resumption (they do not change the images).
bool resumable_key(const std::string& key) {
  return key == "lit_version";
}

void check_manifest(const std::string& dir, const nlohmann::json& wanted, bool resume) {
  const std::string path = dir + "/" + kManifestName;
  const bool exists = fs::exists(path);
  if (!resume) {
    if (exists)
      throw Error("output folder " + dir + " already holds a run (" + kManifestName +
                  "): pass --resume to continue it, or choose another folder");
    return;
  }
  if (!exists) throw Error("--resume: " + dir + " holds no run to resume (" + kManifestName + " is missing)");
  nlohmann::json found;
  try {
    std::ifstream in(path);
    found = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error("--resume: " + path + " is corrupt: " + e.what());
  }
  for (const auto& [key, value] : wanted.items()) {
    if (resumable_key(key)) continue;
    if (!found.contains(key) || found[key] != value) {
      std::string was = found.contains(key) ? found[key].dump() : "(absent)";
      std::string now = value.dump();
      if (was.size() > 80) was = was.substr(0, 77) + "...";
      if (now.size() > 80) now = now.substr(0, 77) + "...";
      throw Error("--resume: the run in " + dir + " was made with " + key + " = " + was + ", this command asks for " +
                  now + "; use the same settings, or another folder");
    }
  }
}

void write_manifest(const std::string& dir, const nlohmann::json& manifest) {
  const std::string text = manifest.dump(1) + "\n";
  AtomicFile out(dir + "/" + kManifestName);
  out.write(text.data(), text.size());
  out.commit();
}

// ---------------------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------------------
struct RunPaths {
  std::string dir;
  std::string ext;
  int64_t total = 0;
  bool images = true;    // write image files (false for a latent model without VAE: latents only)
  bool latents = false;  // keep per-image latents for --save-latents

  std::string image(int64_t i) const { return dir + "/" + index_name(i, total) + "." + ext; }
  std::string latent(int64_t i) const { return dir + "/latents/" + index_name(i, total) + ".safetensors"; }
  bool complete(int64_t i) const { return (!images || fs::exists(image(i))) && (!latents || fs::exists(latent(i))); }
};

GenerationParams image_params(const GenerateOptions& o, const ModelConfig& config, const ClassNames& names,
                              int64_t label, int64_t index, int64_t size) {
  GenerationParams p;
  const bool unconditional = label == config.num_classes;
  p.prompt = unconditional ? "unconditional" : names.names[static_cast<size_t>(label)];
  p.set("Steps", std::to_string(o.steps));
  p.set("Sampler", o.sampler);
  p.set("CFG scale", unconditional ? "1" : format_number(o.cfg_scale));
  p.set("Seed", std::to_string(o.seed + static_cast<uint64_t>(index)));
  p.set("Size", std::to_string(size) + "x" + std::to_string(size));
  p.set("Model", fs::path(o.model).filename().string());
  p.set("Class", unconditional ? "unconditional" : std::to_string(label));
  if (!o.vae.empty()) p.set("VAE", fs::path(o.vae).lexically_normal().filename().string());
  p.set("Guidance channels", o.cfg_all_channels ? "all" : "dit");
  if (o.sampler == "ddim") p.set("Eta", format_number(o.eta));
  p.set("Dtype", o.dtype);
  p.set("Architecture", (config.preset_name() == "custom" ? config.summary() : config.preset_name()));
  p.set("Run seed", std::to_string(o.seed));
  p.set("Image index", std::to_string(index));
  return p;
}

// arr_0 (N, H, W, 3) uint8 streamed into a .npy on disk, then stored in the zip without being held in memory;
// arr_1: the (N,) int64 class labels, guided-diffusion's convention, when `labels` is not empty.
void write_samples_npz(const std::string& path, const RunPaths& paths, int64_t n, const std::vector<int64_t>& labels) {
  at::Tensor first = read_image(paths.image(0));
  const int64_t h = first.size(0), w = first.size(1), c = first.size(2);
  AtomicPath tmp_npy(path + ".arr_0.npy");
  {
    AtomicFile npy(tmp_npy.temp_path());
    const std::string header = npy_header(at::kByte, {n, h, w, c});
    npy.write(header.data(), header.size());
    for (int64_t i = 0; i < n; ++i) {
      const at::Tensor img = i == 0 ? first : read_image(paths.image(i));
      if (img.sizes() != first.sizes())
        throw Error("--npz: " + paths.image(i) + " is " + c10::str(img.sizes()) + ", the others " +
                    c10::str(first.sizes()));
      npy.write(img.contiguous().data_ptr(), static_cast<size_t>(img.numel()));
    }
    npy.commit();
  }
  ZipWriter zip(path);
  zip.add_file("arr_0.npy", tmp_npy.temp_path(), /*compress=*/false);
  const std::string labels_header = npy_header(at::kLong, {n});  // libzip reads it at commit()
  if (!labels.empty())
    zip.add("arr_1.npy",
            {{labels_header.data(), labels_header.size()}, {labels.data(), labels.size() * sizeof(int64_t)}},
            /*compress=*/false);
  zip.commit();
  std::remove(tmp_npy.temp_path().c_str());
}

}  // namespace

int64_t run_generate(const GenerateOptions& options, const std::atomic<bool>* cancel) {
  // ---- everything that can be wrong is checked before the first sampling step ----
  GenerateOptions o = options;
  if (o.model.empty()) o.model = builtin_model_path();
  check_options(o);
  const at::Device device = parse_device(o.device);
  const at::ScalarType dtype = parse_dtype(o.dtype);

  ModelLoadOptions load;
  if (!o.config.empty()) load.config = ModelConfig::from_json_file(o.config);
  load.device = device;
  load.dtype = dtype;
  load.use_weights = o.use_weights;
  LoadedModel loaded = load_model(o.model, load);
  const ModelConfig& config = loaded.config;
  const ClassNames names = class_names_for_model(config.num_classes, loaded.metadata);

  std::optional<AutoencoderKL> vae;
  if (!o.vae.empty()) {
    VaeLoadOptions vo;
    vo.device = device;
    vo.dtype = vae_dtype_for(dtype);
    vae = load_vae(o.vae, vo);
    check_latent_channels(*vae, config.in_channels,
                          (config.preset_name() == "custom" ? o.model : config.preset_name()));
  }
  const bool pixel_model = !vae && (config.in_channels == 1 || config.in_channels == 3);
  if (!vae && !pixel_model && o.save_latents.empty())
    throw Error("the model works on " + std::to_string(config.in_channels) +
                "-channel latents: pass --vae DIR to decode them into images, or --save-latents FILE to keep the "
                "latents only");
  const int64_t factor = vae ? vae->config().downsample_factor() : 1;
  const int64_t image_size = config.input_size * factor;
  if (o.size != 0 && o.size != image_size)
    throw Error("--size " + std::to_string(o.size) + " does not match the model: it makes " +
                std::to_string(image_size) + "x" + std::to_string(image_size) + " images (" +
                std::to_string(config.input_size) + " latent pixels" + (vae ? " x " + std::to_string(factor) : "") +
                ")");
  const std::vector<int64_t> labels = resolve_labels(o, config, names);
  const bool any_conditional =
      std::any_of(labels.begin(), labels.end(), [&](int64_t l) { return l != config.num_classes; });
  if (o.cfg_scale != 1.0 && any_conditional && !config.has_null_class())
    throw Error("--cfg-scale " + format_number(o.cfg_scale) +
                " needs a model with a null class for the unconditional half; this one has none (use 1)");

  at::Tensor init_noise;
  const std::vector<int64_t> sample_shape = {o.num_images, config.in_channels, config.input_size, config.input_size};
  if (!o.init_noise.empty()) {
    try {
      init_noise = read_latents(o.init_noise);
    } catch (const Error& e) {
      throw Error(std::string("--init-noise: ") + e.what());
    }
    if (init_noise.sizes() != at::IntArrayRef(sample_shape))
      throw Error("--init-noise " + o.init_noise + " holds " + c10::str(init_noise.sizes()) + ", the run needs " +
                  c10::str(at::IntArrayRef(sample_shape)) + " (images, channels, height, width)");
  }

  prepare_output_folder(o.output);
  for (const std::string* file : {&o.grid, &o.npz, &o.save_latents})
    if (!file->empty() && fs::path(*file).has_parent_path() && !fs::is_directory(fs::path(*file).parent_path()))
      throw Error(*file + ": folder " + fs::path(*file).parent_path().string() + " does not exist");
  const nlohmann::json manifest = make_manifest(o, config, labels, image_size, !pixel_model);
  check_manifest(o.output, manifest, o.resume);
  write_manifest(o.output, manifest);

  RunPaths paths;
  paths.dir = o.output;
  paths.ext = o.format;
  paths.total = o.num_images;
  paths.images = vae.has_value() || pixel_model;
  paths.latents = !o.save_latents.empty();
  if (paths.latents) fs::create_directories(o.output + "/latents");

  std::vector<int64_t> pending;
  for (int64_t i = 0; i < o.num_images; ++i)
    if (!paths.complete(i)) pending.push_back(i);
  const int64_t already = o.num_images - static_cast<int64_t>(pending.size());
  if (!o.quiet) {
    std::cerr << "lit generate: " << ((config.preset_name() == "custom" ? config.summary() : config.preset_name()))
              << " from " << o.model << " (config " << loaded.config_source << ") on " << device.str() << " " << o.dtype
              << "; " << o.num_images << " images " << image_size << "x" << image_size << ", " << o.sampler << " "
              << o.steps << " steps, cfg " << format_number(o.cfg_scale) << ", seed " << o.seed
              << (already ? ", resuming: " + std::to_string(already) + " done" : "") << "\n";
  }

  // ---- sampling, batch by batch; a batch is a run of consecutive pending indices ----
  SamplingSettings settings;
  settings.sampler = o.sampler;
  settings.steps = o.steps;
  settings.eta = o.eta;
  settings.learn_sigma = config.learn_sigma;
  settings.clip_denoised = pixel_model;
  settings.guidance.null_class = config.num_classes;
  settings.guidance.channels = o.cfg_all_channels ? GuidanceChannels::All : GuidanceChannels::DiT;

  // With --cuda-graphs each model call on CUDA replays a CUDA graph of the forward (model/cuda_graph_forward.h):
  // the same kernels on the same data, without the launch overhead of hundreds of small kernels.
  const ClassConditionalFn forward =
      graphed_forward(loaded.model, o.cuda_graphs && device.is_cuda(), [&o](const std::string& message) {
        if (!o.quiet) std::cerr << "\nlit generate: " << message << "\n";
      });
  const SampleShape shape{config.in_channels, config.input_size, config.input_size};

  ProgressBar bar(o.num_images, "images");
  int64_t done = already, generated = 0;
  // Batches lie on a fixed grid (images [k*B, (k+1)*B)), so a resumed run samples every missing image in the
  // very batch it had in the first run: same shapes, same kernels, the same bytes. A batch with any image
  // missing is sampled whole and only its missing images are written.
  size_t p = 0;
  while (p < pending.size()) {
    const int64_t first = pending[p] / o.batch_size * o.batch_size;
    const int64_t count = std::min(o.batch_size, o.num_images - first);
    size_t q = p;
    while (q < pending.size() && pending[q] < first + count) ++q;
    std::vector<int64_t> batch_labels(labels.begin() + first, labels.begin() + first + count);
    const at::Tensor y = at::tensor(batch_labels, at::kLong);
    // Unconditional images are the same with or without guidance; a batch of them skips the second half.
    const bool all_unconditional =
        std::all_of(batch_labels.begin(), batch_labels.end(), [&](int64_t l) { return l == config.num_classes; });
    settings.guidance.scale = all_unconditional ? 1.0 : o.cfg_scale;

    SamplingControl control;
    control.cancel = cancel;
    if (!o.quiet) {
      control.on_step = [&](const StepProgress& s) {
        char detail[96];
        std::snprintf(detail, sizeof detail, "step %lld/%lld, %.2f it/s", static_cast<long long>(s.step),
                      static_cast<long long>(s.total), s.elapsed_s > 0 ? s.step / s.elapsed_s : 0.0);
        bar.update(done, detail);
      };
    }
    const at::Tensor noise = init_noise.defined() ? init_noise.narrow(0, first, count) : at::Tensor();
    const at::Tensor latents = sample_batch(forward, shape, y, o.seed, first, settings, device, control, noise);

    at::Tensor pixels;
    if (paths.images) {
      const at::NoGradGuard no_grad;
      const at::Tensor decoded = vae ? vae->decode(vae->from_model_space(latents.to(vae->dtype()))) : latents;
      pixels = to_uint8_nhwc(decoded);
    }
    for (size_t j = p; j < q; ++j) {
      const int64_t i = pending[j], k = i - first;
      if (paths.latents) write_latents(paths.latent(i), latents.narrow(0, k, 1).to(at::kCPU, at::kFloat));
      if (paths.images) {
        ImageWriteOptions wo;
        wo.text.emplace_back(kParametersKeyword, format_generation_params(image_params(
                                                     o, config, names, labels[static_cast<size_t>(i)], i, image_size)));
        write_image(paths.image(i), pixels[k], wo);
      }
    }
    done += static_cast<int64_t>(q - p);
    generated += static_cast<int64_t>(q - p);
    if (!o.quiet) bar.update(done);
    p = q;
  }
  if (!o.quiet) bar.finish();

  // ---- outputs over the whole run (also after a resume) ----
  if (!o.grid.empty()) {
    const int64_t k = std::min(o.num_images, kMaxGridImages);
    if (k < o.num_images)
      std::cerr << "lit generate: the grid shows the first " << k << " of " << o.num_images << " images\n";
    std::vector<at::Tensor> images;
    SheetOptions sheet;
    sheet.columns = o.grid_columns;
    sheet.scale = o.grid_scale;
    for (int64_t i = 0; i < k; ++i) {
      images.push_back(read_image(paths.image(i)));
      const int64_t label = labels[static_cast<size_t>(i)];
      if (o.grid_labels)
        sheet.captions.push_back(label == config.num_classes ? "unconditional"
                                                             : names.names[static_cast<size_t>(label)]);
    }
    write_image(o.grid, contact_sheet(images, sheet));
  }
  if (!o.npz.empty()) {
    const bool labelled = config.num_classes > 0 && std::all_of(labels.begin(), labels.end(), [&](int64_t l) {
                            return l >= 0 && l < config.num_classes;
                          });
    write_samples_npz(o.npz, paths, o.num_images, labelled ? labels : std::vector<int64_t>());
  }
  if (!o.save_latents.empty()) {
    std::vector<at::Tensor> all;
    for (int64_t i = 0; i < o.num_images; ++i) all.push_back(read_latents(paths.latent(i)));
    write_latents(o.save_latents, at::cat(all, 0),
                  {{"model", o.model}, {"seed", std::to_string(o.seed)}, {"sampler", o.sampler}});
  }
  if (!o.quiet) {
    std::cerr << "lit generate: " << o.num_images << " images in " << o.output;
    if (!o.grid.empty()) std::cerr << ", grid " << o.grid;
    if (!o.npz.empty()) std::cerr << ", npz " << o.npz;
    if (!o.save_latents.empty()) std::cerr << ", latents " << o.save_latents;
    std::cerr << "\n";
  }
  return generated;
}

}  // namespace lit::cli
