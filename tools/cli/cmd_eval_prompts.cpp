// lit eval-prompts --prompts FILE (--images DIR | --model FILE) [--real DIR] [--json FILE]: how well images follow
// the captions of the project's canvases (model/eval/prompt_adherence.h): per-attribute accuracy (colour,
// position, size, class) per group of the prompts file and overall, per colour and per class, and with --real
// the Fréchet distance to real canvases in the Fashion-MNIST classifier's feature space.
//   --images DIR: images already made. When every prompt names its image ("image", as metadata.jsonl does),
//     DIR/<image>; otherwise `lit generate --prompts-file`'s names and order: 000000.png, 000001.png, ..., image
//     i for prompt i mod the prompt count, --per-prompt K images a prompt (default: the count of numbered images
//     over the prompt count).
//   --model FILE: generates K images a prompt through the pipeline (pipeline/session.h, as `lit generate`
//     does: image i has prompt i mod the count, seed + i) and evaluates them as they come.
//   --captions-out FILE: the captions one a line, the prompts file `lit generate --prompts-file` reads.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/format.h"
#include "common/output_paths.h"
#include "common/parse_number.h"
#include "kernels/runtime/cuda_support.h"
#include "model/backbone/builtin_model.h"
#include "model/eval/fid_inputs.h"
#include "model/eval/fmnist_classifier.h"
#include "model/eval/frechet.h"
#include "model/eval/prompt_adherence.h"
#include "pipeline/request.h"
#include "pipeline/session.h"
#include "tools/cli/commands.h"
#include "tools/cli/progress.h"
#include "weights/generation_params.h"
#include "weights/image_io.h"

namespace fs = std::filesystem;

namespace lit::cli {
namespace {

constexpr int64_t kEvalBatch = 64;  // images measured and classified together

struct EvalPromptsOptions {
  std::string prompts;
  std::string images;  // folder of images made for the prompts
  std::string model;   // or: generate them
  std::string text_encoder, vae, sampler, dtype = "fp32", device = "cpu";
  int64_t steps = kTextSteps;
  double cfg_scale = kTextCfgScale;
  std::string seed = "0";
  int64_t per_prompt = 0;  // 0: inferred (--images) or 1 (--model)
  int64_t batch_size = 8;  // generation
  bool learned_null_caption = false;
  std::string save_images;
  std::string real;
  std::string classifier;
  int threshold = AdherenceOptions{}.threshold;
  std::string json, details, captions_out;
  bool quiet = false;
};

std::string index_name(int64_t i, int64_t total) {  // as `lit generate` names its images
  const size_t digits = std::max<size_t>(6, std::to_string(total - 1).size());
  const std::string name = std::to_string(i);
  return std::string(digits > name.size() ? digits - name.size() : 0, '0') + name;
}

void write_text(const std::string& path, const std::string& text) {
  AtomicFile file(path);
  file.write(text.data(), text.size());
  file.commit();
}

std::string percent(int64_t right, int64_t of) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", of ? 100.0 * static_cast<double>(right) / static_cast<double>(of) : 0.0);
  return text;
}

std::string fixed4(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%.4f", value);
  return text;
}

std::string pad(const std::string& s, size_t width, bool left = false) {
  if (s.size() >= width) return s;
  return left ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

// ---------------------------------------------------------------------------------------------------------
// Where the images come from
// ---------------------------------------------------------------------------------------------------------
class ImageSource {
 public:
  virtual ~ImageSource() = default;
  virtual int64_t count() const = 0;
  virtual std::string describe() const = 0;
  // Images first .. first + n - 1 (uint8 (H, W, 3)), and their names for messages.
  virtual std::vector<std::pair<at::Tensor, std::string>> get(int64_t first, int64_t n) = 0;
};

class FolderSource : public ImageSource {
 public:
  FolderSource(std::vector<std::string> files, std::string what) : files_(std::move(files)), what_(std::move(what)) {}
  int64_t count() const override { return static_cast<int64_t>(files_.size()); }
  std::string describe() const override { return what_; }
  std::vector<std::pair<at::Tensor, std::string>> get(int64_t first, int64_t n) override {
    std::vector<std::pair<at::Tensor, std::string>> out;
    for (int64_t i = first; i < first + n; ++i) out.emplace_back(read_image(files_[i]), files_[i]);
    return out;
  }

 private:
  std::vector<std::string> files_;
  std::string what_;
};

// The files of --images DIR for the prompts, in evaluation order; sets *per_prompt when it was 0.
std::vector<std::string> folder_images(const std::string& dir, const std::vector<AdherencePrompt>& prompts,
                                       int64_t* per_prompt, bool* by_name) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error("--images " + dir + ": not a folder");
  const auto count = static_cast<int64_t>(prompts.size());
  std::vector<std::string> files;
  *by_name = std::all_of(prompts.begin(), prompts.end(), [](const AdherencePrompt& p) { return !p.image.empty(); });
  if (*by_name) {  // metadata.jsonl: each prompt names its image
    if (*per_prompt > 1)
      throw Error("--per-prompt " + std::to_string(*per_prompt) +
                  ": the prompts name their images (\"image\"), one image each");
    *per_prompt = 1;
    for (const AdherencePrompt& p : prompts) {
      if (p.image.find("..") != std::string::npos || fs::path(p.image).is_absolute())
        throw Error(p.where + ": \"image\" '" + p.image + "' must be a name inside the images folder");
      files.push_back((fs::path(dir) / p.image).string());
      if (!fs::is_regular_file(files.back(), ec)) throw Error(p.where + ": " + files.back() + " does not exist");
    }
    return files;
  }
  if (*per_prompt == 0) {  // as many as the folder holds numbered PNGs
    int64_t numbered = 0;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      const std::string stem = entry.path().stem().string();
      if (entry.path().extension() == ".png" && !stem.empty() &&
          stem.find_first_not_of("0123456789") == std::string::npos)
        ++numbered;
    }
    if (ec) throw Error("--images " + dir + ": " + ec.message());
    if (numbered == 0 || numbered % count != 0)
      throw Error("--images " + dir + " holds " + std::to_string(numbered) + " numbered PNGs (000000.png, ...), not " +
                  "a multiple of the " + std::to_string(count) + " prompts: give --per-prompt K");
    *per_prompt = numbered / count;
  }
  const int64_t total = *per_prompt * count;
  for (int64_t i = 0; i < total; ++i) {
    files.push_back(dir + "/" + index_name(i, total) + ".png");
    if (!fs::is_regular_file(files.back(), ec))
      throw Error("--images: " + files.back() + " is missing (" + std::to_string(*per_prompt) + " images for each of " +
                  std::to_string(count) + " prompts, named as `lit generate --prompts-file` names them)");
  }
  return files;
}

class GeneratedSource : public ImageSource {
 public:
  GeneratedSource(const EvalPromptsOptions& o, const std::vector<AdherencePrompt>& prompts, int64_t per_prompt)
      : o_(o), session_([&o](const std::string& message) {
          if (!o.quiet) std::cerr << "\nlit eval-prompts: " << message << "\n";
        }) {
    GenerationRequest r;
    r.model = o.model;
    r.text_encoder = o.text_encoder;
    r.vae = o.vae;
    r.device = o.device;
    r.dtype = o.dtype;
    r.sampler = o.sampler.empty() ? kTextSampler : o.sampler;
    r.steps = o.steps;
    r.cfg_scale = o.cfg_scale;
    r.cfg_all_channels = true;
    r.learned_null_caption = o.learned_null_caption;
    r.seed = parse_seed(o.seed);
    r.num_images = per_prompt * static_cast<int64_t>(prompts.size());
    r.conditioning.kind = Conditioning::Kind::Prompt;
    for (const AdherencePrompt& p : prompts) r.conditioning.prompts.push_back(p.caption);
    plan_ = session_.plan(r);
    for (const AdherencePrompt& p : prompts)
      if (plan_.width != p.canvas || plan_.height != p.canvas)
        throw Error("--model " + session_.info().path + " makes " + std::to_string(plan_.width) + "x" +
                    std::to_string(plan_.height) + " images, " + p.where + " asks for a " + std::to_string(p.canvas) +
                    "x" + std::to_string(p.canvas) + " canvas");
  }
  int64_t count() const override { return plan_.request.num_images; }
  std::string describe() const override {
    const GenerationRequest& r = plan_.request;
    return "generated by " + session_.info().path + " (" + r.sampler + " " + std::to_string(r.steps) + " steps, cfg " +
           format_number(r.cfg_scale) + ", seed " + std::to_string(r.seed) + ", " + r.device + " " + r.dtype + ")";
  }
  const GenerationPlan& plan() const { return plan_; }
  std::vector<std::pair<at::Tensor, std::string>> get(int64_t first, int64_t n) override {
    std::vector<std::pair<at::Tensor, std::string>> out;
    for (int64_t b = first; b < first + n; b += o_.batch_size) {
      const int64_t m = std::min(o_.batch_size, first + n - b);
      const at::Tensor pixels = session_.images(session_.sample(plan_, b, m));
      for (int64_t k = 0; k < m; ++k) {
        const std::string name = index_name(b + k, count()) + ".png";
        if (!o_.save_images.empty()) {
          ImageWriteOptions wo;
          wo.text.emplace_back(kParametersKeyword, format_generation_params(session_.image_params(plan_, b + k)));
          write_image(o_.save_images + "/" + name, pixels[k], wo);
        }
        out.emplace_back(pixels[k], "image " + name);
      }
    }
    return out;
  }

 private:
  const EvalPromptsOptions& o_;
  Session session_;
  GenerationPlan plan_;
};

// ---------------------------------------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------------------------------------
nlohmann::ordered_json counts_json(const AttributeCounts& c, bool per_image) {
  nlohmann::ordered_json j;
  if (per_image) j["images"] = c.images;
  j["objects"] = c.objects;
  j["found"] = c.rate(c.found, c.objects);
  j["colour"] = c.rate(c.colour, c.objects);
  j["position"] = c.rate(c.position, c.objects);
  j["size"] = c.rate(c.size, c.objects);
  j["class"] = c.rate(c.cls, c.objects);
  if (per_image) j["all"] = c.rate(c.all, c.images);
  return j;
}

std::string counts_row(const std::string& name, const AttributeCounts& c, bool per_image) {
  std::string row = pad(name, 16) + pad(per_image ? std::to_string(c.images) : "", 7, true) +
                    pad(std::to_string(c.objects), 9, true) + pad(percent(c.found, c.objects), 8, true) +
                    pad(percent(c.colour, c.objects), 9, true) + pad(percent(c.position, c.objects), 10, true) +
                    pad(percent(c.size, c.objects), 8, true) + pad(percent(c.cls, c.objects), 8, true);
  if (per_image) row += pad(percent(c.all, c.images), 8, true);
  return row + "\n";
}

nlohmann::ordered_json measurement_json(const ObjectMeasurement& m, const PromptObject& want) {
  nlohmann::ordered_json j;
  j["expected"] = {{"class", want.class_id}, {"colour", want.colour}, {"position", want.position}, {"size", want.size}};
  j["found"] = m.found;
  j["pixels"] = m.pixels;
  if (m.found) {
    j["measured"] = {{"class", m.predicted_class},
                     {"colour", m.colour},
                     {"position", m.position},
                     {"size", m.size},
                     {"chroma", m.chroma},
                     {"hue", m.hue},
                     {"saturation", m.saturation},
                     {"centroid", {m.cx, m.cy}},
                     {"box", m.box},
                     {"extent", m.extent}};
  }
  j["ok"] = {{"colour", m.colour_ok}, {"position", m.position_ok}, {"size", m.size_ok}, {"class", m.class_ok}};
  return j;
}

void run_eval_prompts(EvalPromptsOptions& o) {
  // ---- everything that can be refused, before any work ----
  if (o.prompts.empty()) throw Error("--prompts FILE is required (JSON lines: eval-prompts.jsonl, metadata.jsonl)");
  if (!o.images.empty() && !o.model.empty()) throw Error("--images and --model exclude each other");
  if (o.images.empty() && o.model.empty() && o.captions_out.empty())
    throw Error("give --images DIR (images made for the prompts) or --model FILE (generate them)");
  if (o.per_prompt < 0) throw Error("--per-prompt must be at least 1");
  if (o.batch_size < 1) throw Error("--batch-size must be at least 1");
  if (o.threshold < 1 || o.threshold > 255) throw Error("--threshold must be 1..255");
  if (o.model.empty()) {
    for (const auto& [given, name] :
         std::vector<std::pair<bool, const char*>>{{!o.text_encoder.empty(), "--text-encoder"},
                                                   {!o.vae.empty(), "--vae"},
                                                   {!o.save_images.empty(), "--save-images"}})
      if (given) throw Error(std::string(name) + " goes with --model (generating the images)");
  }
  const std::vector<AdherencePrompt> prompts = read_adherence_prompts(o.prompts);
  AdherenceOptions options;
  options.threshold = o.threshold;
  const std::vector<PaletteColour> palette = palette_of(prompts, options.threshold);
  check_outputs_distinct({{"--json", o.json}, {"--details", o.details}, {"--captions-out", o.captions_out}},
                         {{"--prompts", o.prompts}, {"--model", o.model}});
  for (const auto& [option, file] : std::vector<std::pair<std::string, std::string>>{
           {"--json", o.json}, {"--details", o.details}, {"--captions-out", o.captions_out}})
    if (!file.empty()) check_output_writable(option, file);
  if (!o.captions_out.empty()) {
    std::string text;
    for (const AdherencePrompt& p : prompts) {
      if (p.caption.find_first_of("\r\n") != std::string::npos)
        throw Error(p.where + ": the caption has a line break: it cannot be one line of --captions-out");
      text += p.caption + "\n";
    }
    write_text(o.captions_out, text);
    if (!o.quiet)
      std::cerr << "lit eval-prompts: wrote " << prompts.size() << " captions to " << o.captions_out << "\n";
    if (o.images.empty() && o.model.empty()) return;
  }
  std::vector<std::string> real_files;
  if (!o.real.empty()) {
    try {
      real_files = list_image_files(o.real);
    } catch (const Error& e) {
      throw Error(std::string("--real: ") + e.what());
    }
    if (real_files.size() < 2) throw Error("--real " + o.real + ": the Fréchet distance needs at least 2 images");
  }
  const std::string classifier_path = !o.classifier.empty() ? o.classifier : [] {
    if (auto found = find_builtin_classifier()) return *found;
    throw Error(
        "the built-in Fashion-MNIST classifier (model/builtin/fmnist-classifier.safetensors) is not "
        "installed: pass --classifier FILE");
  }();
  const at::Device device = kernels::parse_device(o.device);
  LoadedFmnistClassifier classifier = load_fmnist_classifier(classifier_path, device);

  int64_t per_prompt = o.per_prompt;
  std::unique_ptr<ImageSource> source;
  bool by_name = false;
  if (!o.images.empty()) {
    std::vector<std::string> files = folder_images(o.images, prompts, &per_prompt, &by_name);
    source = std::make_unique<FolderSource>(std::move(files), o.images);
  } else {
    if (per_prompt == 0) per_prompt = 1;
    if (!o.save_images.empty()) {
      std::error_code ec;
      fs::create_directories(o.save_images, ec);
      if (ec || !fs::is_directory(o.save_images)) throw Error("--save-images " + o.save_images + ": cannot create it");
      check_output_writable("--save-images", o.save_images + "/000000.png");
    }
    source = std::make_unique<GeneratedSource>(o, prompts, per_prompt);
  }
  if (!o.real.empty() && source->count() < 2)
    throw Error("--real: the Fréchet distance needs at least 2 evaluated images, this run has " +
                std::to_string(source->count()));
  const auto count = static_cast<int64_t>(prompts.size());
  std::map<std::string, int64_t> group_sizes;
  for (const AdherencePrompt& p : prompts) ++group_sizes[p.group];
  if (!o.quiet) {
    std::string groups;
    std::vector<std::pair<std::string, int64_t>> ordered;  // as the table orders them
    for (const char* known : {"single", "heldout", "two"})
      if (group_sizes.count(known)) ordered.emplace_back(known, group_sizes[known]);
    for (const auto& [name, n] : group_sizes)
      if (name != "single" && name != "heldout" && name != "two") ordered.emplace_back(name, n);
    for (const auto& [name, n] : ordered) groups += (groups.empty() ? "" : ", ") + name + " " + std::to_string(n);
    std::cerr << "lit eval-prompts: " << count << " prompts (" << groups << "), " << per_prompt
              << (per_prompt == 1 ? " image" : " images") << " each, " << source->describe() << "; classifier "
              << classifier_path << "\n";
  }

  // The real canvases' statistics first: a bad file there stops the run before any image is generated.
  std::optional<FeatureStatistics> real_statistics;
  if (!o.real.empty()) {
    std::vector<at::Tensor> real_features;
    ProgressBar real_bar(static_cast<int64_t>(real_files.size()), "real canvases");
    for (size_t first = 0; first < real_files.size(); first += 256) {
      std::vector<at::Tensor> batch;
      for (size_t i = first; i < std::min(real_files.size(), first + 256); ++i)
        batch.push_back(read_image(real_files[i]));
      real_features.push_back(canvas_features(classifier.model, batch));
      if (!o.quiet) real_bar.update(static_cast<int64_t>(first + batch.size()));
    }
    if (!o.quiet) real_bar.finish(o.real);
    real_statistics = compute_statistics(at::cat(real_features, 0), o.real);
  }

  // ---- measuring, a batch of images at a time ----
  AdherenceTally tally;
  std::vector<at::Tensor> features;
  std::string details;
  ProgressBar bar(source->count(), "images");
  // Generated in chunks of whole batches from image 0 on, the batches lie on lit generate's grid (the same images).
  const int64_t chunk = o.model.empty() ? kEvalBatch : std::max<int64_t>(1, kEvalBatch / o.batch_size) * o.batch_size;
  for (int64_t first = 0; first < source->count(); first += chunk) {
    const int64_t n = std::min(chunk, source->count() - first);
    const auto images = source->get(first, n);
    std::vector<std::vector<ObjectMeasurement>> measured;
    std::vector<at::Tensor> pixels;
    for (int64_t k = 0; k < n; ++k) {
      const AdherencePrompt& p = prompts[static_cast<size_t>((first + k) % count)];
      const at::Tensor& image = images[k].first;
      if (image.size(0) != p.canvas || image.size(1) != p.canvas)
        throw Error(images[k].second + ": " + std::to_string(image.size(1)) + "x" + std::to_string(image.size(0)) +
                    ", but " + p.where + " asks for a " + std::to_string(p.canvas) + "x" + std::to_string(p.canvas) +
                    " canvas");
      measured.push_back(measure_objects(image, p, palette, options));
      pixels.push_back(image);
    }
    std::vector<ObjectMeasurement*> all;
    for (auto& objects : measured)
      for (auto& m : objects) all.push_back(&m);
    classify_objects(classifier.model, all);
    for (int64_t k = 0; k < n; ++k) {
      const AdherencePrompt& p = prompts[static_cast<size_t>((first + k) % count)];
      tally.add(p, measured[k]);
      if (!o.details.empty()) {
        nlohmann::ordered_json line;
        line["image"] = images[k].second;
        line["prompt"] = p.where;
        line["caption"] = p.caption;
        line["group"] = p.group;
        line["objects"] = nlohmann::ordered_json::array();
        for (size_t j = 0; j < measured[k].size(); ++j)
          line["objects"].push_back(measurement_json(measured[k][j], p.objects[j]));
        details += line.dump() + "\n";
      }
    }
    if (!o.real.empty()) features.push_back(canvas_features(classifier.model, pixels));
    if (!o.quiet) bar.update(first + n);
  }
  if (!o.quiet) bar.finish();

  std::optional<FrechetResult> fd;
  if (!o.real.empty()) {
    fd = frechet_distance(*real_statistics, compute_statistics(at::cat(features, 0), source->describe()));
  }

  // ---- the report ----
  std::ostringstream out;
  nlohmann::ordered_json j;
  j["prompts"] = o.prompts;
  j["images"] = o.images.empty() ? nlohmann::ordered_json(source->describe()) : nlohmann::ordered_json(o.images);
  j["per_prompt"] = per_prompt;
  j["evaluated_images"] = source->count();
  const auto accuracy = classifier.metadata.find("test_accuracy");
  j["classifier"] = {{"path", classifier_path},
                     {"test_accuracy", accuracy == classifier.metadata.end() ? "" : accuracy->second}};
  j["threshold"] = o.threshold;
  nlohmann::ordered_json palette_json = nlohmann::ordered_json::object();
  for (const PaletteColour& c : palette) palette_json[c.name] = c.rgb;
  j["palette"] = palette_json;

  out << "images: " << source->count() << " (" << per_prompt << " per prompt) of " << count << " prompts in "
      << o.prompts << "\nclassifier: " << classifier_path
      << (accuracy == classifier.metadata.end() ? "" : " (Fashion-MNIST test accuracy " + accuracy->second + ")")
      << "\n\naccuracy (%)    images  objects   found   colour  position    size   class     all\n";
  nlohmann::ordered_json groups;
  for (const auto& [name, counts] : tally.groups()) {
    out << counts_row(name, counts, true);
    groups[name] = counts_json(counts, true);
  }
  out << counts_row("overall", tally.overall(), true);
  groups["overall"] = counts_json(tally.overall(), true);
  j["groups"] = groups;

  // A table of counts by a named attribute (the colour, the size), and its JSON object.
  const auto breakdown = [&](const char* heading, const char* key, const std::map<std::string, AttributeCounts>& by) {
    out << "\n" << heading << "objects   found   colour  position    size   class\n";
    nlohmann::ordered_json table = nlohmann::ordered_json::object();
    for (const auto& [name, counts] : by) {
      out << counts_row(name, counts, false);
      table[name] = counts_json(counts, false);
    }
    j[key] = table;
  };
  breakdown("by colour (%)           ", "per_colour", tally.per_colour());
  out << "\nby class (%)            objects   found   colour  position    size   class\n";
  nlohmann::ordered_json per_class = nlohmann::ordered_json::object();
  for (const auto& [id, counts] : tally.per_class()) {
    const std::string& name = fashion_mnist_class_names()[static_cast<size_t>(id)];
    out << counts_row(std::to_string(id) + " " + name, counts, false);
    per_class[name] = counts_json(counts, false);
    per_class[name]["class_id"] = id;
  }
  j["per_class"] = per_class;
  breakdown("by size (%)             ", "per_size", tally.per_size());
  // What the classifier read where the class was wrong: "4 Coat: Pullover 10, T-shirt/top 3".
  out << "\nclass read as (found garments the classifier named otherwise)\n";
  nlohmann::ordered_json readings = nlohmann::ordered_json::object();
  for (const auto& [id, counts] : tally.per_class()) {
    std::vector<std::pair<int64_t, int64_t>> wrong;  // count, read class
    nlohmann::ordered_json row = nlohmann::ordered_json::object();
    for (const auto& [pair, n] : tally.class_readings()) {
      if (pair.first != id) continue;
      row[fashion_mnist_class_names()[static_cast<size_t>(pair.second)]] = n;
      if (pair.second != id) wrong.emplace_back(n, pair.second);
    }
    const std::string& name = fashion_mnist_class_names()[static_cast<size_t>(id)];
    readings[name] = row;
    if (wrong.empty()) continue;
    std::stable_sort(wrong.begin(), wrong.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    out << "  " << id << " " << name << ":";
    for (size_t i = 0; i < wrong.size(); ++i)
      out << (i ? ", " : " ") << fashion_mnist_class_names()[static_cast<size_t>(wrong[i].second)] << " "
          << wrong[i].first;
    out << "\n";
  }
  j["class_readings"] = readings;
  if (fd) {
    out << "\nFD-FMNIST-canvas (" << kCanvasFdConvention << "): " << fixed4(fd->distance) << " (" << source->count()
        << " evaluated vs " << real_files.size() << " real canvases in " << o.real << ")\n";
    j["fd_fmnist_canvas"] = {{"value", fd->distance},
                             {"convention", kCanvasFdConvention},
                             {"real", o.real},
                             {"real_images", real_files.size()},
                             {"warning", fd->warning}};
  }
  if (!o.details.empty()) {
    write_text(o.details, details);
    out << "wrote " << o.details << "\n";
  }
  if (!o.json.empty()) {
    write_text(o.json, j.dump(2) + "\n");
    out << "wrote " << o.json << "\n";
  }
  std::cout << out.str();
  std::cout.flush();
  if (fd && !fd->warning.empty()) std::cerr << "lit: warning: " << fd->warning << "\n";
}

}  // namespace

void add_eval_prompts_command(CLI::App& app) {
  static EvalPromptsOptions o;
  auto* cmd = app.add_subcommand(
      "eval-prompts",
      "Prompt adherence on the captioned canvases: colour, position, size and class accuracy, FD to real canvases");
  cmd->add_option("--prompts", o.prompts,
                  "JSON lines of captions and their garments (eval-prompts.jsonl, or a data set's metadata.jsonl)")
      ->required();
  cmd->add_option("--images", o.images,
                  "folder of the images made for the prompts: each prompt's \"image\", or lit generate's "
                  "000000.png ... (image i for prompt i mod the prompt count)");
  cmd->add_option("--model", o.model, "generate the images with this text-to-image checkpoint instead");
  cmd->add_option("--per-prompt", o.per_prompt,
                  "images per prompt (default: --images: the numbered PNGs over the prompts; --model: 1)");
  cmd->add_option("--text-encoder", o.text_encoder, "--model: its T5 text encoder folder");
  cmd->add_option("--vae", o.vae, "--model: its VAE folder (latent models)");
  cmd->add_option("--sampler", o.sampler, "--model: sampler (default dpm++2m)");
  cmd->add_option("--steps", o.steps, "--model: sampling steps")->capture_default_str();
  cmd->add_option("--cfg-scale", o.cfg_scale, "--model: classifier-free guidance scale")->capture_default_str();
  cmd->add_option("--seed", o.seed, "--model: image i uses seed + i")->capture_default_str();
  cmd->add_option("--dtype", o.dtype, "--model: fp32, bf16 or fp16")->capture_default_str();
  cmd->add_option("--batch-size", o.batch_size, "--model: images per model batch")->capture_default_str();
  cmd->add_option_function<std::string>(
         "--null-caption", [](const std::string& name) { o.learned_null_caption = name == "learned"; },
         "--model: the null caption of guidance: t5 (T5 of an empty prompt) or learned (the model's y_embedding, "
         "what a model trained with caption dropout learned; as lit generate --null-caption)")
      ->check(CLI::IsMember({"t5", "learned"}))
      ->default_str("t5");
  cmd->add_option("--save-images", o.save_images, "--model: also write the images to this folder");
  cmd->add_option("--device", o.device, "cpu, cuda or cuda:N (the classifier, and --model)")->capture_default_str();
  cmd->add_option("--real", o.real,
                  "folder of real canvases (lit make-captions): adds the Fréchet distance in the classifier's "
                  "feature space (FD-FMNIST-canvas)");
  cmd->add_option("--classifier", o.classifier,
                  "Fashion-MNIST classifier (default: the built-in model/builtin/fmnist-classifier.safetensors)");
  cmd->add_option("--threshold", o.threshold, "object pixels: brightest channel >= this (1..255)")
      ->capture_default_str();
  cmd->add_option("--json", o.json, "also write the numbers to this JSON file");
  cmd->add_option("--details", o.details, "write every image's measurements to this file (JSON lines)");
  cmd->add_option("--captions-out", o.captions_out,
                  "write the captions, one a line, for lit generate --prompts-file (alone: only that)");
  cmd->add_flag("-q,--quiet", o.quiet, "no progress output");
  cmd->callback([] { run_eval_prompts(o); });
}

}  // namespace lit::cli
