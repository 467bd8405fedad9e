#include "model/eval/prompt_adherence.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/format.h"
#include "model/backbone/builtin_model.h"

namespace lit {
namespace {

constexpr int64_t kMaxCanvas = 4096;
constexpr int64_t kCropSide = 28;  // Fashion-MNIST's images

// ---------------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------------
const nlohmann::json& field(const nlohmann::json& object, const char* key, const std::string& where) {
  const auto it = object.find(key);
  if (it == object.end()) throw Error(where + ": \"" + key + "\" is missing");
  return *it;
}

std::string string_field(const nlohmann::json& object, const char* key, const std::string& where) {
  const nlohmann::json& v = field(object, key, where);
  if (!v.is_string()) throw Error(where + ": \"" + key + "\" must be a string, got " + v.dump());
  return v.get<std::string>();
}

int64_t integer_field(const nlohmann::json& object, const char* key, const std::string& where, int64_t lo, int64_t hi) {
  const nlohmann::json& v = field(object, key, where);
  if (!v.is_number_integer() || v.get<int64_t>() < lo || v.get<int64_t>() > hi)
    throw Error(where + ": \"" + key + "\" must be an integer " + std::to_string(lo) + ".." + std::to_string(hi) +
                ", got " + v.dump());
  return v.get<int64_t>();
}

PromptObject parse_object(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": each of \"objects\" must be an object, got " + j.dump());
  PromptObject o;
  o.class_id = integer_field(j, "class", where, 0, FmnistClassifierImpl::kNumClasses - 1);
  if (j.contains("garment")) o.garment = string_field(j, "garment", where);
  o.colour = string_field(j, "colour", where);
  if (o.colour.empty()) throw Error(where + ": \"colour\" is empty");
  const nlohmann::json& rgb = field(j, "rgb", where);
  bool ok = rgb.is_array() && rgb.size() == 3;
  for (size_t c = 0; ok && c < 3; ++c) {
    ok = rgb[c].is_number_integer() && rgb[c].get<int64_t>() >= 0 && rgb[c].get<int64_t>() <= 255;
    if (ok) o.rgb[c] = rgb[c].get<int>();
  }
  if (!ok) throw Error(where + ": \"rgb\" must be three integers 0..255, got " + rgb.dump());
  o.position = string_field(j, "position", where);
  const auto& positions = CanvasLayout::positions();
  if (std::find(positions.begin(), positions.end(), o.position) == positions.end())
    throw Error(where + ": \"position\" '" + o.position + "': use left, right, top, bottom or centre");
  o.size = string_field(j, "size", where);
  if (o.size != "small" && o.size != "large") throw Error(where + ": \"size\" '" + o.size + "': use small or large");
  return o;
}

// ---------------------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------------------
// The image's brightest channel (H x W bytes, row-major).
std::vector<uint8_t> brightest_channel(const at::Tensor& image) {
  const at::Tensor max = std::get<0>(image.max(2)).contiguous();
  const uint8_t* p = max.data_ptr<uint8_t>();
  return std::vector<uint8_t>(p, p + max.numel());
}

// Object pixels: brightness >= threshold, less the 8-connected components of fewer than min_component pixels.
std::vector<uint8_t> object_mask(const std::vector<uint8_t>& bright, int64_t h, int64_t w, int threshold,
                                 int64_t min_component) {
  std::vector<uint8_t> mask(bright.size());
  for (size_t i = 0; i < bright.size(); ++i) mask[i] = bright[i] >= threshold ? 1 : 0;
  std::vector<uint8_t> seen(mask.size(), 0);
  std::vector<int64_t> component, stack;
  for (int64_t start = 0; start < h * w; ++start) {
    if (!mask[start] || seen[start]) continue;
    component.clear();
    stack.assign(1, start);
    seen[start] = 1;
    while (!stack.empty()) {
      const int64_t i = stack.back();
      stack.pop_back();
      component.push_back(i);
      const int64_t y = i / w, x = i % w;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t ny = y + dy, nx = x + dx;
          if (ny < 0 || ny >= h || nx < 0 || nx >= w) continue;
          const int64_t j = ny * w + nx;
          if (mask[j] && !seen[j]) {
            seen[j] = 1;
            stack.push_back(j);
          }
        }
    }
    if (static_cast<int64_t>(component.size()) < min_component)
      for (int64_t i : component) mask[i] = 0;
  }
  return mask;
}

std::array<double, 2> hue_saturation(const std::array<double, 3>& c) {
  const double mx = std::max({c[0], c[1], c[2]}), mn = std::min({c[0], c[1], c[2]});
  if (mx <= 0) return {0, 0};
  const double d = mx - mn;
  double hue = 0;
  if (d > 0) {
    if (mx == c[0])
      hue = std::fmod((c[1] - c[2]) / d + 6, 6);
    else if (mx == c[1])
      hue = (c[2] - c[0]) / d + 2;
    else
      hue = (c[0] - c[1]) / d + 4;
  }
  return {hue * 60, d / mx};
}

// The palette colour of a chroma, by hue, with white as low saturation: a nearly gray chroma (saturation below
// kAchromatic) is the achromatic palette colour nearest in saturation, any other the chromatic palette colour of
// nearest hue (when the palette has colours of that kind; else the nearest of the other kind).
constexpr double kAchromatic = 0.3;

double hue_distance(double a, double b) {
  const double d = std::fabs(a - b);
  return std::min(d, 360 - d);
}

const PaletteColour& nearest_colour(double hue, double saturation, const std::vector<PaletteColour>& palette) {
  bool have_gray = false, have_chromatic = false;
  for (const PaletteColour& p : palette) {
    const bool gray = hue_saturation({double(p.rgb[0]), double(p.rgb[1]), double(p.rgb[2])})[1] < kAchromatic;
    have_gray = have_gray || gray;
    have_chromatic = have_chromatic || !gray;
  }
  const bool want_gray = saturation < kAchromatic ? have_gray : !have_chromatic;
  const PaletteColour* best = &palette.front();
  double best_distance = INFINITY;
  for (const PaletteColour& p : palette) {
    const auto hs = hue_saturation({double(p.rgb[0]), double(p.rgb[1]), double(p.rgb[2])});
    if ((hs[1] < kAchromatic) != want_gray) continue;
    const double distance = want_gray ? std::fabs(hs[1] - saturation) : hue_distance(hs[0], hue);
    if (distance < best_distance) {
      best_distance = distance;
      best = &p;
    }
  }
  return *best;
}

// The box of the brightest-channel image, divided by the colour's brightest channel, its longer side resized to
// 28 (bicubic: it keeps more of a small garment's detail than bilinear) and centred on 28x28: (1, 28, 28) in [0, 1].
at::Tensor classifier_crop(const std::vector<uint8_t>& bright, int64_t w, const std::array<int64_t, 4>& box,
                           const PaletteColour& colour) {
  const int64_t bw = box[2] - box[0], bh = box[3] - box[1];
  at::Tensor crop = at::empty({1, 1, bh, bw}, at::kFloat);
  float* p = crop.data_ptr<float>();
  const double reach = std::max({colour.rgb[0], colour.rgb[1], colour.rgb[2]});
  for (int64_t y = 0; y < bh; ++y)
    for (int64_t x = 0; x < bw; ++x)
      p[y * bw + x] = static_cast<float>(std::min(1.0, bright[(box[1] + y) * w + box[0] + x] / reach));
  const int64_t longer = std::max(bw, bh);
  const int64_t rh = std::max<int64_t>(1, std::llround(double(bh) * kCropSide / longer));
  const int64_t rw = std::max<int64_t>(1, std::llround(double(bw) * kCropSide / longer));
  const at::Tensor resized =
      at::upsample_bicubic2d(crop, {rh, rw}, /*align_corners=*/false).clamp(0, 1).view({1, rh, rw});
  at::Tensor out = at::zeros({1, kCropSide, kCropSide}, at::kFloat);
  out.narrow(1, (kCropSide - rh) / 2, rh).narrow(2, (kCropSide - rw) / 2, rw).copy_(resized);
  return out;
}

// Measures the object pixels of mask within [x0, x1) x [y0, y1).
ObjectMeasurement measure_region(const std::vector<uint8_t>& bright, const std::vector<uint8_t>& mask,
                                 const at::Tensor& image, int64_t w, int64_t x0, int64_t y0, int64_t x1, int64_t y1,
                                 int64_t min_pixels, int64_t max_pixels, const std::vector<PaletteColour>& palette) {
  ObjectMeasurement m;
  const at::Tensor rgb = image.contiguous();
  const uint8_t* px = rgb.data_ptr<uint8_t>();
  double sum[3] = {0, 0, 0}, sum_bright = 0, sx = 0, sy = 0;
  std::array<int64_t, 4> box = {x1, y1, x0, y0};
  for (int64_t y = y0; y < y1; ++y)
    for (int64_t x = x0; x < x1; ++x) {
      const int64_t i = y * w + x;
      if (!mask[i]) continue;
      ++m.pixels;
      for (int c = 0; c < 3; ++c) sum[c] += px[i * 3 + c];
      sum_bright += bright[i];
      sx += bright[i] * (x + 0.5);
      sy += bright[i] * (y + 0.5);
      box = {std::min(box[0], x), std::min(box[1], y), std::max(box[2], x + 1), std::max(box[3], y + 1)};
    }
  // Too few pixels: nothing there. Too many: no garment on a black background either (a haze or noise
  // filling the region; a garment's box holds at most large_side^2 pixels).
  if (m.pixels < std::max<int64_t>(1, min_pixels) || m.pixels > max_pixels) return m;
  m.found = true;
  for (int c = 0; c < 3; ++c) m.chroma[c] = sum[c] / sum_bright;
  const auto hs = hue_saturation(m.chroma);
  m.hue = hs[0];
  m.saturation = hs[1];
  const PaletteColour& colour = nearest_colour(m.hue, m.saturation, palette);
  m.colour = colour.name;
  m.cx = sx / sum_bright;
  m.cy = sy / sum_bright;
  m.box = box;
  m.extent = std::max(box[2] - box[0], box[3] - box[1]);
  m.crop = classifier_crop(bright, w, box, colour);
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Prompts
// ---------------------------------------------------------------------------------------------------------
AdherencePrompt parse_adherence_prompt(const std::string& line, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": not JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(where + ": a line must be a JSON object, got " + std::string(j.type_name()));
  AdherencePrompt p;
  p.where = where;
  p.caption = string_field(j, "caption", where);
  if (j.contains("image")) p.image = string_field(j, "image", where);
  p.canvas = integer_field(j, "canvas", where, 8, kMaxCanvas);
  const nlohmann::json& objects = field(j, "objects", where);
  if (!objects.is_array() || objects.empty() || objects.size() > 2)
    throw Error(where + ": \"objects\" must be an array of one or two garments, got " +
                (objects.is_array() ? std::to_string(objects.size()) + " entries" : objects.dump()));
  for (const auto& o : objects) p.objects.push_back(parse_object(o, where));
  if (p.objects.size() == 2) {
    const std::string& a = p.objects[0].position;
    const std::string& b = p.objects[1].position;
    if (!((a == "left" && b == "right") || (a == "top" && b == "bottom")))
      throw Error(where + ": two garments are left and right, or top and bottom (objects[0] first), got " + a +
                  " and " + b);
  }
  p.group = j.contains("group") ? string_field(j, "group", where) : (p.objects.size() == 1 ? "single" : "two");
  if (p.group.empty()) throw Error(where + ": \"group\" is empty");
  return p;
}

std::vector<AdherencePrompt> read_adherence_prompts(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw Error(path + ": is a folder, not a prompts file (JSON lines)");
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open the prompts file");
  std::vector<AdherencePrompt> prompts;
  int64_t number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    prompts.push_back(parse_adherence_prompt(line, path + ":" + std::to_string(number)));
  }
  if (in.bad()) throw Error(path + ": read error");
  if (prompts.empty()) throw Error(path + ": no prompts in it (one JSON object a line)");
  return prompts;
}

std::vector<PaletteColour> palette_of(const std::vector<AdherencePrompt>& prompts, int threshold) {
  std::map<std::string, std::pair<std::array<int, 3>, std::string>> seen;  // name -> rgb, where first seen
  for (const AdherencePrompt& p : prompts)
    for (const PromptObject& o : p.objects) {
      const auto [it, inserted] = seen.emplace(o.colour, std::make_pair(o.rgb, p.where));
      if (!inserted && it->second.first != o.rgb) {
        const auto text = [](const std::array<int, 3>& c) {
          return "[" + std::to_string(c[0]) + ", " + std::to_string(c[1]) + ", " + std::to_string(c[2]) + "]";
        };
        throw Error(p.where + ": colour '" + o.colour + "' is " + text(o.rgb) + " here but " + text(it->second.first) +
                    " at " + it->second.second);
      }
      if (inserted && std::max({o.rgb[0], o.rgb[1], o.rgb[2]}) < threshold)
        throw Error(p.where + ": colour '" + o.colour +
                    "' is too dark to tell from the black background (brightest "
                    "channel below the threshold " +
                    std::to_string(threshold) + ")");
    }
  std::vector<PaletteColour> palette;
  for (const auto& [name, value] : seen) palette.push_back({name, value.first});
  return palette;
}

// ---------------------------------------------------------------------------------------------------------
// Layout
// ---------------------------------------------------------------------------------------------------------
CanvasLayout CanvasLayout::for_canvas(int64_t canvas) {
  CanvasLayout layout;
  layout.canvas = canvas;
  layout.small_side = static_cast<double>(canvas * 5 / 16);
  layout.large_side = static_cast<double>(canvas / 2);
  return layout;
}

const std::vector<std::string>& CanvasLayout::positions() {
  static const std::vector<std::string> names = {"left", "right", "top", "bottom", "centre"};
  return names;
}

std::array<double, 2> CanvasLayout::anchor(const std::string& position) const {
  const double c = static_cast<double>(canvas);
  if (position == "left") return {c / 4, c / 2};
  if (position == "right") return {c * 3 / 4, c / 2};
  if (position == "top") return {c / 2, c / 4};
  if (position == "bottom") return {c / 2, c * 3 / 4};
  if (position == "centre") return {c / 2, c / 2};
  throw Error("position '" + position + "': use left, right, top, bottom or centre");
}

// ---------------------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------------------
std::vector<ObjectMeasurement> measure_objects(const at::Tensor& image, const AdherencePrompt& prompt,
                                               const std::vector<PaletteColour>& palette,
                                               const AdherenceOptions& options) {
  if (palette.empty()) throw Error("prompt adherence: the palette is empty");
  if (image.dim() != 3 || image.size(2) != 3 || image.scalar_type() != at::kByte)
    throw Error(prompt.where + ": the image must be uint8 (H, W, 3), got " + shape_string(image.sizes()));
  const int64_t h = image.size(0), w = image.size(1);
  if (h != prompt.canvas || w != prompt.canvas)
    throw Error(prompt.where + ": the image is " + std::to_string(w) + "x" + std::to_string(h) +
                ", the prompt's canvas " + std::to_string(prompt.canvas) + "x" + std::to_string(prompt.canvas));
  const at::Tensor pixels = image.to(at::kCPU).contiguous();
  const std::vector<uint8_t> bright = brightest_channel(pixels);
  const std::vector<uint8_t> mask = object_mask(bright, h, w, options.threshold, options.min_component);
  const CanvasLayout layout = CanvasLayout::for_canvas(prompt.canvas);
  const auto min_pixels = static_cast<int64_t>(options.min_object_fraction * layout.small_side * layout.small_side);
  const auto max_pixels = static_cast<int64_t>(options.max_object_fraction * layout.large_side * layout.large_side);

  std::vector<ObjectMeasurement> out;
  if (prompt.objects.size() == 1) {
    out.push_back(measure_region(bright, mask, pixels, w, 0, 0, w, h, min_pixels, max_pixels, palette));
  } else {
    const bool columns = prompt.objects[0].position == "left";
    const int64_t s = (columns ? w : h) / 2;
    out.push_back(columns ? measure_region(bright, mask, pixels, w, 0, 0, s, h, min_pixels, max_pixels, palette)
                          : measure_region(bright, mask, pixels, w, 0, 0, w, s, min_pixels, max_pixels, palette));
    out.push_back(columns ? measure_region(bright, mask, pixels, w, s, 0, w, h, min_pixels, max_pixels, palette)
                          : measure_region(bright, mask, pixels, w, 0, s, w, h, min_pixels, max_pixels, palette));
  }
  // The anchor nearest the intensity centroid; of two garments, each looked for in its own half only.
  for (ObjectMeasurement& m : out) {
    if (!m.found) continue;
    double best = INFINITY;
    for (const std::string& name : CanvasLayout::positions()) {
      const auto a = layout.anchor(name);
      const double d = std::hypot(m.cx - a[0], m.cy - a[1]);
      if (d < best) {
        best = d;
        m.position = name;
      }
    }
  }
  for (size_t k = 0; k < out.size(); ++k) {
    ObjectMeasurement& m = out[k];
    const PromptObject& want = prompt.objects[k];
    m.expected_class = want.class_id;
    if (!m.found) continue;
    m.size = m.extent >= layout.size_threshold() ? "large" : "small";
    m.colour_ok = m.colour == want.colour;
    m.position_ok = m.position == want.position;
    m.size_ok = m.size == want.size;
  }
  return out;
}

void classify_objects(FmnistClassifier& classifier, const std::vector<ObjectMeasurement*>& objects) {
  std::vector<at::Tensor> crops;
  std::vector<ObjectMeasurement*> found;
  for (ObjectMeasurement* m : objects) {
    m->predicted_class = -1;
    m->class_ok = false;
    if (m->found && m->crop.defined()) {
      crops.push_back(m->crop);
      found.push_back(m);
    }
  }
  if (crops.empty()) return;
  at::NoGradGuard no_grad;
  const at::Device device = classifier->parameters()[0].device();
  const at::Tensor x = fmnist_classifier_input(at::stack(crops)).to(device);
  const at::Tensor predicted = classifier->forward(x).argmax(1).to(at::kCPU);
  for (size_t i = 0; i < found.size(); ++i) {
    found[i]->predicted_class = predicted[static_cast<int64_t>(i)].item<int64_t>();
    found[i]->class_ok = found[i]->predicted_class == found[i]->expected_class;
  }
}

at::Tensor canvas_features(FmnistClassifier& classifier, const std::vector<at::Tensor>& images) {
  if (images.empty()) throw Error("canvas features: no images");
  std::vector<at::Tensor> gray;
  for (const at::Tensor& image : images) {
    if (image.dim() != 3 || image.size(2) != 3 || image.scalar_type() != at::kByte)
      throw Error("canvas features: images must be uint8 (H, W, 3), got " + shape_string(image.sizes()));
    const at::Tensor g =
        std::get<0>(image.to(at::kCPU).max(2)).to(at::kFloat).div(255).view({1, 1, image.size(0), image.size(1)});
    gray.push_back(at::adaptive_avg_pool2d(g, {FmnistClassifierImpl::kImageSize, FmnistClassifierImpl::kImageSize}));
  }
  at::NoGradGuard no_grad;
  const at::Device device = classifier->parameters()[0].device();
  const at::Tensor x = fmnist_classifier_input(at::cat(gray, 0)).to(device);
  return classifier->features(x).to(at::kCPU, at::kFloat);
}

// ---------------------------------------------------------------------------------------------------------
// Tallies
// ---------------------------------------------------------------------------------------------------------
void AdherenceTally::add(const AdherencePrompt& prompt, const std::vector<ObjectMeasurement>& objects) {
  if (objects.size() != prompt.objects.size())
    throw Error(prompt.where + ": " + std::to_string(objects.size()) + " measurements for " +
                std::to_string(prompt.objects.size()) + " garments");
  bool all = true;
  AttributeCounts& group = groups_[prompt.group];
  for (size_t k = 0; k < objects.size(); ++k) {
    const ObjectMeasurement& m = objects[k];
    all = all && m.colour_ok && m.position_ok && m.size_ok && m.class_ok;
    const PromptObject& asked = prompt.objects[k];
    if (m.found && m.predicted_class >= 0) ++class_readings_[{asked.class_id, m.predicted_class}];
    for (AttributeCounts* c :
         {&group, &overall_, &per_colour_[asked.colour], &per_class_[asked.class_id], &per_size_[asked.size]}) {
      ++c->objects;
      c->found += m.found;
      c->colour += m.colour_ok;
      c->position += m.position_ok;
      c->size += m.size_ok;
      c->cls += m.class_ok;
    }
  }
  for (AttributeCounts* c : {&group, &overall_}) {
    ++c->images;
    c->all += all;
  }
}

std::vector<std::pair<std::string, AttributeCounts>> AdherenceTally::groups() const {
  std::vector<std::pair<std::string, AttributeCounts>> out;
  for (const char* name : {"single", "heldout", "two"})
    if (const auto it = groups_.find(name); it != groups_.end()) out.emplace_back(*it);
  for (const auto& [name, counts] : groups_)
    if (name != "single" && name != "heldout" && name != "two") out.emplace_back(name, counts);
  return out;
}

std::optional<std::string> find_builtin_classifier() {
  std::set<std::string> tried;
  for (const std::string& model : builtin_model_candidates()) {
    const std::string path =
        (std::filesystem::path(model).parent_path() / "fmnist-classifier.safetensors").lexically_normal().string();
    std::error_code ec;
    if (tried.insert(path).second && std::filesystem::is_regular_file(path, ec)) return path;
  }
  return std::nullopt;
}

}  // namespace lit
