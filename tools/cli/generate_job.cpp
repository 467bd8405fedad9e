#include "tools/cli/generate_job.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/format.h"
#include "common/output_paths.h"
#include "common/run_lock.h"
#include "model/t2i/pixart_io.h"
#include "pipeline/session.h"
#include "tools/cli/contact_sheet.h"
#include "tools/cli/progress.h"
#include "tools/cli/shards.h"
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
constexpr int64_t kPromptCaptionLines = 3;  // a prompt under its image on the sheet: wrapped, at most 3 lines

// ---------------------------------------------------------------------------------------------------------
// The CLI's own checks (the request's are the pipeline's), all before any model is loaded
// ---------------------------------------------------------------------------------------------------------
void check_options(const GenerateOptions& o) {
  if (o.output.empty()) throw Error("-o/--output is required");
  if (o.batch_size < 1) throw Error("--batch-size must be at least 1, got " + std::to_string(o.batch_size));
  if (o.size < 0) throw Error("--size must be positive");
  if (o.format != "png" && o.format != "jpg" && o.format != "webp")
    throw Error("--format '" + o.format + "': use png, jpg or webp");
  if (o.format != "png" && !can_write_image_format("x." + o.format))
    throw Error("--format " + o.format + ": " + image_codecs_summary());
  const int sources =
      (!o.classes.empty()) + (!o.classes_file.empty()) + (o.random_classes ? 1 : 0) + (o.all_classes ? 1 : 0);
  if (sources > 1) throw Error("--class, --classes-file, --random-classes and --all-classes exclude each other");
  if (o.has_prompt && !o.prompts_file.empty()) throw Error("--prompt and --prompts-file exclude each other");
  if (sources > 0 && (o.has_prompt || !o.prompts_file.empty()))
    throw Error("--prompt/--prompts-file and --class/--classes-file/--random-classes/--all-classes exclude each other");
  if (o.grid.empty() && (o.grid_labels || o.grid_scale != 1 || o.grid_columns != 0))
    throw Error("--grid-labels, --grid-scale and --grid-columns need --grid FILE");
  if (o.grid_scale < 1 || o.grid_scale > 64)
    throw Error("--grid-scale must be 1..64, got " + std::to_string(o.grid_scale));
  if (o.grid_columns < 0) throw Error("--grid-columns must not be negative");
  if (o.grid_labels && !can_draw_captions())
    throw Error("--grid-labels: this build has no OpenCV imgproc to draw text (install libopencv-imgproc-dev)");
  if (!o.grid.empty() && !can_write_image_format(o.grid))
    throw Error("--grid " + o.grid + ": unsupported image format (" + image_codecs_summary() + ")");
}

// The folder exists (created if needed) and accepts files: checked without writing through a name an
// attacker could have planted (common/output_paths.h).
void prepare_output_folder(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create output folder " + dir + ": " + ec.message());
  if (!fs::is_directory(dir)) throw Error("output " + dir + " is not a folder");
  check_output_writable("-o", dir + "/run.json");
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

// One prompt per line (a trailing '\r' removed); blank lines are skipped.
std::vector<std::string> read_prompts_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("--prompts-file " + path + ": cannot open");
  std::vector<std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) out.push_back(line);
  }
  if (out.empty()) throw Error("--prompts-file " + path + ": no prompts in it (one prompt per line)");
  return out;
}

// The request with the conditioning of --prompt/--prompts-file, --class, --classes-file, --all-classes or
// --random-classes; a prompt without --model is for the built-in text model; a text-to-image model gets
// PixArt's sampling defaults for what the user did not choose.
GenerationRequest request_of(const GenerateOptions& o) {
  GenerationRequest r = o.request;
  Conditioning& c = r.conditioning;
  c = Conditioning{};
  if (o.has_prompt || !o.prompts_file.empty()) {
    c.kind = Conditioning::Kind::Prompt;
    c.prompt = o.prompt;
    c.negative_prompt = o.negative_prompt;
    if (!o.prompts_file.empty()) {
      c.prompts = read_prompts_file(o.prompts_file);
      if (!o.num_images_given) r.num_images = static_cast<int64_t>(c.prompts.size());
    }
  } else if (!o.negative_prompt.empty()) {
    throw Error("--negative-prompt needs --prompt or --prompts-file");
  } else if (!o.classes.empty() || !o.classes_file.empty()) {
    c.kind = Conditioning::Kind::Classes;
    c.classes = o.classes_file.empty() ? o.classes : read_classes_file(o.classes_file);
  } else if (o.all_classes) {
    c.kind = Conditioning::Kind::AllClasses;
  } else if (o.random_classes) {
    c.kind = Conditioning::Kind::RandomClasses;
  }
  use_builtin_text_model(r, o.null_caption_given);
  if (!r.model.empty() && is_pixart_checkpoint(r.model)) {
    if (!o.sampler_given) r.sampler = kTextSampler;
    if (!o.steps_given) r.steps = kTextSteps;
    if (!o.cfg_given) r.cfg_scale = kTextCfgScale;
    r.cfg_all_channels = true;  // guidance over all channels (DDPM/DDIM; PixArt's DPM-Solver always does)
  }
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// The run manifest: what must stay the same for --resume to continue a run
// ---------------------------------------------------------------------------------------------------------
nlohmann::json make_manifest(const GenerateOptions& o, const GenerationPlan& plan, const ModelInfo& info) {
  const GenerationRequest& r = plan.request;
  nlohmann::json m;
  m["lit_version"] = LIT_VERSION;
  m["model"] = fs::absolute(info.path).lexically_normal().string();
  m["use_weights"] = r.use_weights;
  m["model_config"] = nlohmann::json::parse(info.config_json);
  m["vae"] = r.vae.empty() ? "" : fs::absolute(r.vae).lexically_normal().string();
  m["num_images"] = r.num_images;
  m["seed"] = r.seed;
  m["labels"] = plan.labels;
  m["sampler"] = r.sampler;
  m["steps"] = r.steps;
  m["eta"] = r.eta;
  m["cfg_scale"] = r.cfg_scale;
  m["guidance_channels"] = r.cfg_all_channels ? "all" : "dit";
  if (r.clamp_x0 != ClampX0::Auto) m["clamp_x0"] = clamp_x0_name(r.clamp_x0);
  m["dtype"] = r.dtype;
  m["image_size"] = plan.image_size;
  m["latent_model"] = !info.pixel_model() || (info.channels != 1 && info.channels != 3);
  m["format"] = o.format;
  m["init_noise"] = o.init_noise.empty() ? "" : fs::absolute(o.init_noise).lexically_normal().string();
  m["save_latents"] = !o.save_latents.empty();
  if (info.text_conditional) {
    const Conditioning& c = r.conditioning;
    m["text_encoder"] = fs::absolute(r.text_encoder).lexically_normal().string();
    m["prompts"] = c.prompts.empty() ? std::vector<std::string>{c.prompt} : c.prompts;
    m["negative_prompt"] = c.negative_prompt;
    m["width"] = plan.width;
    m["height"] = plan.height;
    m["max_length"] = r.max_length;
    m["guidance_convention"] = guidance_convention_name(r.guidance_convention);
    m["null_caption"] = r.learned_null_caption ? "learned" : "t5";
  }
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
        throw Error("--npz: " + paths.image(i) + " is " + shape_string(img.sizes()) + ", the others " +
                    shape_string(first.sizes()));
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

int64_t run_generate(const GenerateOptions& o, const std::atomic<bool>* cancel) {
  // ---- everything that can be wrong is checked before the first sampling step ----
  check_options(o);
  Session session([&o](const std::string& message) {
    if (!o.quiet) std::cerr << "\nlit generate: " << message << "\n";
  });
  const GenerationPlan plan = session.plan(request_of(o), /*latents_only=*/!o.save_latents.empty());
  const GenerationRequest& r = plan.request;
  const ModelInfo& info = session.info();
  const int64_t n = r.num_images;
  if (info.text_conditional && o.size != 0 && (o.size != plan.width || o.size != plan.height))
    throw Error("--size " + std::to_string(o.size) + ": the run makes " + std::to_string(plan.width) + "x" +
                std::to_string(plan.height) + " images (choose them with --width and --height)");
  if (!info.text_conditional && o.size != 0 && o.size != plan.image_size)
    throw Error("--size " + std::to_string(o.size) + " does not match the model: it makes " +
                std::to_string(plan.image_size) + "x" + std::to_string(plan.image_size) + " images (" +
                std::to_string(info.latent_size) + " latent pixels" +
                (session.vae() ? " x " + std::to_string(plan.image_size / info.latent_size) : "") + ")");

  at::Tensor init_noise;
  const std::vector<int64_t> sample_shape = {n, info.channels, plan.latent_height, plan.latent_width};
  if (!o.init_noise.empty()) {
    try {
      init_noise = read_latents(o.init_noise);
    } catch (const Error& e) {
      throw Error(std::string("--init-noise: ") + e.what());
    }
    if (init_noise.sizes() != at::IntArrayRef(sample_shape))
      throw Error("--init-noise " + o.init_noise + " holds " + shape_string(init_noise.sizes()) + ", the run needs " +
                  shape_string(sample_shape) + " (images, channels, height, width)");
  }

  prepare_output_folder(o.output);
  // Outputs must not name an input or each other, and each must be writable, before any sampling.
  check_outputs_distinct({{"--grid", o.grid},
                          {"--npz", o.npz},
                          {"--save-latents", o.save_latents},
                          {"-o", o.output + "/" + kManifestName}},
                         {{"--model", o.request.model},
                          {"--vae", o.request.vae},
                          {"--init-noise", o.init_noise},
                          {"--prompts-file", o.prompts_file},
                          {"--classes-file", o.classes_file}});
  for (const auto& [option, file] : std::vector<std::pair<std::string, std::string>>{
           {"--grid", o.grid}, {"--npz", o.npz}, {"--save-latents", o.save_latents}})
    if (!file.empty()) check_output_writable(option, file);
  // One run at a time in a folder (shards of one run may share it: they write disjoint images).
  std::optional<RunFolderLock> lock;
  if (!resolve_shard(o.shard).active()) lock.emplace(o.output);
  const nlohmann::json manifest = make_manifest(o, plan, info);
  // Shards may share one folder: a shard joins the run another shard started there when the settings match.
  const bool join_shards = resolve_shard(o.shard).active() && fs::exists(o.output + "/" + kManifestName);
  check_manifest(o.output, manifest, o.resume || join_shards);
  write_manifest(o.output, manifest);

  RunPaths paths;
  paths.dir = o.output;
  paths.ext = o.format;
  paths.total = n;
  paths.images = plan.images;
  paths.latents = !o.save_latents.empty();
  if (paths.latents) fs::create_directories(o.output + "/latents");

  // --resume keeps an existing image only if it decodes, has the run's size and (PNG) its own parameters
  // record; a truncated, garbage or foreign file is made again.
  const auto image_intact = [&](const std::string& file, int64_t i) {
    try {
      const at::Tensor img = read_image(file);
      if (img.dim() != 3 || img.size(0) != plan.height || img.size(1) != plan.width) return false;
      if (o.format != "png") return true;
      const auto text = find_parameters_text(read_png_info(file).text);
      return text && *text == format_generation_params(session.image_params(plan, i));
    } catch (const std::exception&) {
      return false;
    }
  };
  // A shard (--shard K/N, or RANK/WORLD_SIZE under torchrun) makes only its batches: tools/cli/shards.h.
  const Shard shard = resolve_shard(o.shard);
  std::vector<int64_t> pending;
  int64_t mine = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!shard.has_image(i, o.batch_size)) continue;
    ++mine;
    if (!paths.complete(i) || (paths.images && !image_intact(paths.image(i), i))) pending.push_back(i);
  }
  const int64_t already = mine - static_cast<int64_t>(pending.size());
  if (!o.quiet) {
    std::cerr << "lit generate: " << info.architecture << " from " << info.path << " (config " << info.config_source
              << ") on " << r.device << " " << r.dtype << "; " << n << " images " << plan.width << "x" << plan.height
              << ", " << r.sampler << " " << r.steps << " steps, cfg " << format_number(r.cfg_scale) << ", seed "
              << r.seed << (already ? ", resuming: " + std::to_string(already) + " done" : "") << "\n";
  }

  // ---- sampling, batch by batch; a batch is a run of consecutive pending indices ----
  ProgressBar bar(mine, "images");
  int64_t done = already, generated = 0;
  // Batches lie on a fixed grid (images [k*B, (k+1)*B)), so a resumed run samples every missing image in the
  // very batch it had in the first run: same shapes, same kernels, the same bytes. A batch with any image
  // missing is sampled whole and only its missing images are written.
  size_t p = 0;
  while (p < pending.size()) {
    const int64_t first = pending[p] / o.batch_size * o.batch_size;
    const int64_t count = std::min(o.batch_size, n - first);
    size_t q = p;
    while (q < pending.size() && pending[q] < first + count) ++q;
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
    const at::Tensor latents = session.sample(plan, first, count, control, noise);
    const at::Tensor pixels = paths.images ? session.images(latents) : at::Tensor();
    for (size_t j = p; j < q; ++j) {
      const int64_t i = pending[j], k = i - first;
      if (paths.latents) write_latents(paths.latent(i), latents.narrow(0, k, 1).to(at::kCPU, at::kFloat));
      if (paths.images) {
        ImageWriteOptions wo;
        wo.text.emplace_back(kParametersKeyword, format_generation_params(session.image_params(plan, i)));
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
  const std::vector<int64_t>& labels = plan.labels;
  if (!o.grid.empty()) {
    const int64_t k = std::min(n, kMaxGridImages);
    if (k < n) std::cerr << "lit generate: the grid shows the first " << k << " of " << n << " images\n";
    std::vector<at::Tensor> images;
    SheetOptions sheet;
    sheet.columns = o.grid_columns;
    sheet.scale = o.grid_scale;
    if (info.text_conditional) sheet.caption_lines = kPromptCaptionLines;  // prompts wrap under their image
    for (int64_t i = 0; i < k; ++i) {
      images.push_back(read_image(paths.image(i)));
      const int64_t label = labels[static_cast<size_t>(i)];
      if (o.grid_labels && info.text_conditional) {
        sheet.captions.push_back(r.conditioning.prompt_of(i));
      } else if (o.grid_labels) {
        sheet.captions.push_back(label == info.num_classes ? "unconditional"
                                                           : info.classes.names[static_cast<size_t>(label)]);
      }
    }
    write_image(o.grid, contact_sheet(images, sheet));
  }
  if (!o.npz.empty()) {
    const bool labelled = info.num_classes > 0 && std::all_of(labels.begin(), labels.end(), [&](int64_t l) {
                            return l >= 0 && l < info.num_classes;
                          });
    write_samples_npz(o.npz, paths, n, labelled ? labels : std::vector<int64_t>());
  }
  if (!o.save_latents.empty()) {
    std::vector<at::Tensor> all;
    for (int64_t i = 0; i < n; ++i) all.push_back(read_latents(paths.latent(i)));
    write_latents(o.save_latents, at::cat(all, 0),
                  {{"model", info.path}, {"seed", std::to_string(r.seed)}, {"sampler", r.sampler}});
  }
  if (!o.quiet) {
    std::cerr << "lit generate: " << n << " images in " << o.output;
    if (!o.grid.empty()) std::cerr << ", grid " << o.grid;
    if (!o.npz.empty()) std::cerr << ", npz " << o.npz;
    if (!o.save_latents.empty()) std::cerr << ", latents " << o.save_latents;
    std::cerr << "\n";
  }
  return generated;
}

}  // namespace lit::cli
