#include "app/state/studio_state.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/format.h"
#include "kernels/runtime/cuda_support.h"
#include "model/backbone/builtin_model.h"
#include "pipeline/parameters.h"
#include "sampler/sampler.h"
#include "weights/image_io.h"

namespace fs = std::filesystem;

namespace lit::studio {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------------------
bool Settings::operator==(const Settings& o) const {
  return model_path == o.model_path && vae_path == o.vae_path && text_encoder_path == o.text_encoder_path &&
         learned_null_caption == o.learned_null_caption && guidance_convention == o.guidance_convention &&
         width == o.width && height == o.height && conditioning == o.conditioning && sampler == o.sampler &&
         steps == o.steps && eta == o.eta && cfg_scale == o.cfg_scale && cfg_all_channels == o.cfg_all_channels &&
         seed == o.seed && random_seed == o.random_seed && batch_count == o.batch_count && device == o.device &&
         dtype == o.dtype && clamp_x0 == o.clamp_x0 && execution == o.execution && preview_every == o.preview_every;
}

bool use_builtin_text_model(Settings& s) {
  const std::optional<BuiltinTextModel> builtin = find_builtin_text_model();
  if (!builtin) return false;
  s.model_path = builtin->model;
  s.text_encoder_path = builtin->text_encoder;
  s.vae_path.clear();
  s.learned_null_caption = true;  // trained with caption dropout to its y_embedding
  s.conditioning.kind = Conditioning::Kind::Prompt;
  if (s.conditioning.prompt.empty()) s.conditioning.prompt = kBuiltinTextExamplePrompt;
  return true;
}

bool use_builtin_class_model(Settings& s) {
  const std::optional<std::string> builtin = find_builtin_model();
  if (!builtin) return false;
  s.model_path = *builtin;
  s.vae_path.clear();
  if (s.conditioning.kind == Conditioning::Kind::Prompt) s.conditioning.kind = Conditioning::Kind::Class;
  return true;
}

uint64_t random_seed() {
  static std::mt19937_64 engine{std::random_device{}()};
  static std::mutex mutex;
  const std::lock_guard<std::mutex> lock(mutex);
  return engine() & 0xffffffffULL;
}

uint64_t seed_for_run(Settings& settings) {
  if (settings.random_seed) settings.seed = random_seed();
  return settings.seed;
}

GenerationRequest request_of(const Settings& s, uint64_t run_seed) {
  GenerationRequest r;
  r.model = s.model_path;
  r.vae = s.vae_path;
  r.text_encoder = s.text_encoder_path;
  r.device = s.device;
  r.dtype = s.dtype;
  r.execution = s.execution;
  r.sampler = s.sampler;
  r.steps = s.steps;
  r.eta = s.eta;
  r.cfg_scale = s.cfg_scale;
  r.cfg_all_channels = s.cfg_all_channels;
  r.clamp_x0 = s.clamp_x0;
  r.seed = run_seed;
  r.num_images = s.batch_count;
  if (s.conditioning.kind == Conditioning::Kind::Class) {
    r.conditioning.kind = lit::Conditioning::Kind::Classes;
    r.conditioning.classes = {std::to_string(s.conditioning.class_id)};
  } else if (s.conditioning.kind == Conditioning::Kind::Prompt) {
    r.conditioning.kind = lit::Conditioning::Kind::Prompt;
    r.conditioning.prompt = s.conditioning.prompt;
    r.conditioning.negative_prompt = s.conditioning.negative_prompt;
    r.learned_null_caption = s.learned_null_caption;
    r.guidance_convention = s.guidance_convention;
    r.width = s.width;
    r.height = s.height;
  }
  return r;
}

void validate_settings(const Settings& s) {
  if (s.batch_count < 1 || s.batch_count > 1000)
    throw Error("batch count must be 1..1000, got " + std::to_string(s.batch_count));
  if (s.preview_every < 0) throw Error("preview interval must not be negative");
  GenerationRequest r = request_of(s, s.seed);
  check_request(r);
}

int64_t label_for(const ModelInfo& model, const Conditioning& c) {
  if (c.kind == Conditioning::Kind::Unconditional || !model.class_conditional) return model.num_classes;
  return c.class_id;
}

// ---------------------------------------------------------------------------------------------------------
// Parameters text
// ---------------------------------------------------------------------------------------------------------
GenerationParams image_params(const Settings& s, const ModelInfo& model, uint64_t run_seed, int64_t index) {
  GenerationRequest r = request_of(s, run_seed);
  if (const auto name = canonical_sampler_name(r.sampler)) r.sampler = *name;
  if (const auto dtype = dtype_from_name(r.dtype)) r.dtype = dtype_name(*dtype);
  return lit::image_params(r, model, label_for(model, s.conditioning), index);
}

RestoredSettings settings_from_params(const GenerationParams& params, const Settings& base, const ModelInfo* model) {
  const RestoredRequest restored = request_from_params(params, request_of(base, base.seed), model);
  const GenerationRequest& r = restored.request;
  RestoredSettings out;
  out.notes = restored.notes;
  Settings& s = out.settings;
  s = base;
  s.sampler = r.sampler;
  s.steps = r.steps;
  s.eta = r.eta;
  s.cfg_scale = r.cfg_scale;
  s.cfg_all_channels = r.cfg_all_channels;
  s.clamp_x0 = r.clamp_x0;
  s.dtype = r.dtype;
  s.seed = r.seed;
  const bool seed_read =
      std::none_of(out.notes.begin(), out.notes.end(), [](const std::string& n) { return n.rfind("Seed '", 0) == 0; });
  if (params.get("Seed") && seed_read) s.random_seed = false;
  if (r.conditioning.kind == lit::Conditioning::Kind::Prompt) {
    s.conditioning.kind = Conditioning::Kind::Prompt;
    s.conditioning.prompt = r.conditioning.prompt;
    s.conditioning.negative_prompt = r.conditioning.negative_prompt;
    s.learned_null_caption = r.learned_null_caption;
    s.guidance_convention = r.guidance_convention;
    s.width = r.width;
    s.height = r.height;
  } else if (r.conditioning.kind == lit::Conditioning::Kind::Unconditional)
    s.conditioning.kind = Conditioning::Kind::Unconditional;
  else if (r.conditioning.kind == lit::Conditioning::Kind::Classes && r.conditioning.classes.size() == 1)
    s.conditioning = {Conditioning::Kind::Class, std::stoll(r.conditioning.classes[0])};
  return out;
}

GenerationParams read_png_params(const std::string& path) {
  if (const auto text = find_parameters_text(read_png_info(path).text)) return parse_generation_params(*text);
  throw Error(path + ": the PNG carries no generation parameters (no '" + kParametersKeyword + "' text)");
}

// ---------------------------------------------------------------------------------------------------------
// History
// ---------------------------------------------------------------------------------------------------------
at::Tensor make_thumbnail(const at::Tensor& pixels, int64_t max_side) {
  const int64_t h = pixels.size(0), w = pixels.size(1);
  if (std::max(h, w) <= max_side) return pixels;
  const double f = static_cast<double>(max_side) / static_cast<double>(std::max(h, w));
  const int64_t th = std::max<int64_t>(1, static_cast<int64_t>(std::lround(h * f)));
  const int64_t tw = std::max<int64_t>(1, static_cast<int64_t>(std::lround(w * f)));
  const at::Tensor x = pixels.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);
  const at::Tensor small = at::adaptive_avg_pool2d(x, {th, tw});
  return small.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(at::kByte).contiguous();
}

int64_t History::add(HistoryEntry entry) {
  entry.id = next_id_++;
  entry.pixels = entry.pixels.contiguous();
  entry.thumbnail = make_thumbnail(entry.pixels);
  entries_.push_back(std::move(entry));
  if (entries_.size() > capacity_) entries_.erase(entries_.begin());
  selected_ = entries_.back().id;
  return selected_;
}

size_t History::thumbnail_count() const {
  return static_cast<size_t>(
      std::count_if(entries_.begin(), entries_.end(), [](const HistoryEntry& e) { return e.thumbnail.defined(); }));
}

const HistoryEntry* History::find(int64_t id) const {
  for (const auto& e : entries_)
    if (e.id == id) return &e;
  return nullptr;
}

const HistoryEntry* History::select(int64_t id) {
  const HistoryEntry* e = find(id);
  if (e) selected_ = id;
  return e;
}

const HistoryEntry* History::selected() const {
  return find(selected_);
}

void History::set_saved_path(int64_t id, const std::string& path) {
  for (auto& e : entries_)
    if (e.id == id) e.saved_path = path;
}

void History::clear() {
  entries_.clear();
  selected_ = 0;
}

void save_entry(const HistoryEntry& entry, const std::string& path) {
  if (path.empty()) throw Error("save: no file name given");
  ImageWriteOptions options;
  if (!entry.params.fields.empty() || !entry.params.prompt.empty())
    options.text.emplace_back(kParametersKeyword, format_generation_params(entry.params));
  write_image(path, entry.pixels, options);
}

std::string suggest_save_path(const std::string& dir, const HistoryEntry& entry) {
  const std::string stem = "lit-studio-" + entry.params.get("Seed").value_or(std::to_string(entry.id));
  for (int k = 1;; ++k) {
    const fs::path p = fs::path(dir) / (stem + (k == 1 ? "" : "-" + std::to_string(k)) + ".png");
    std::error_code ec;
    if (!fs::exists(p, ec)) return p.string();
  }
}

HistoryEntry open_image(const std::string& path, const Settings& base, const ModelInfo* model,
                        std::vector<std::string>* notes) {
  HistoryEntry e;
  e.pixels = read_image(path);
  e.source = path;
  e.settings = base;
  if (looks_like_png(path)) {
    if (const auto text = find_parameters_text(read_png_info(path).text)) e.params = parse_generation_params(*text);
  }
  if (e.params.fields.empty() && e.params.prompt.empty()) {
    if (notes) notes->push_back(path + " carries no generation parameters; settings unchanged");
    return e;
  }
  RestoredSettings r = settings_from_params(e.params, base, model);
  e.settings = r.settings;
  if (notes) notes->insert(notes->end(), r.notes.begin(), r.notes.end());
  return e;
}

DisplaySize fit_image(int64_t width, int64_t height, float box_width, float box_height) {
  DisplaySize d;
  if (width <= 0 || height <= 0 || box_width <= 0 || box_height <= 0) return d;
  const float fit = std::min(box_width / static_cast<float>(width), box_height / static_cast<float>(height));
  d.scale = fit >= 1 ? std::floor(fit) : fit;
  d.width = static_cast<float>(width) * d.scale;
  d.height = static_cast<float>(height) * d.scale;
  return d;
}

// ---------------------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------------------
std::string RecentFiles::default_path() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg && *xdg)
    return std::string(xdg) + "/lit-studio/recent.json";
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.config/lit-studio/recent.json";
}

void RecentFiles::load() {
  lists_.clear();
  std::ifstream in(path_);
  if (!in) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error("recent files " + path_ + " is not valid JSON (" + one_line(e.what()) + ")");
  }
  if (!j.is_object()) throw Error("recent files " + path_ + ": expected a JSON object");
  for (const auto& [kind, files] : j.items()) {
    if (!files.is_array()) continue;
    std::vector<std::string> list;
    for (const auto& f : files)
      if (f.is_string() && list.size() < per_kind_) list.push_back(f.get<std::string>());
    lists_.emplace_back(kind, std::move(list));
  }
}

void RecentFiles::save() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [kind, files] : lists_) j[kind] = files;
  const std::string text = j.dump(2) + "\n";
  std::error_code ec;
  const fs::path dir = fs::path(path_).parent_path();
  if (!dir.empty()) fs::create_directories(dir, ec);
  if (ec) throw Error("cannot create " + dir.string() + ": " + ec.message());
  AtomicFile out(path_);
  out.write(text.data(), text.size());
  out.commit();
}

void RecentFiles::add(const std::string& kind, const std::string& file) {
  if (file.empty()) return;
  auto it = std::find_if(lists_.begin(), lists_.end(), [&](const auto& l) { return l.first == kind; });
  if (it == lists_.end()) it = lists_.insert(lists_.end(), {kind, {}});
  auto& list = it->second;
  list.erase(std::remove(list.begin(), list.end(), file), list.end());
  list.insert(list.begin(), file);
  if (list.size() > per_kind_) list.resize(per_kind_);
}

std::vector<std::string> RecentFiles::list(const std::string& kind) const {
  for (const auto& [k, files] : lists_)
    if (k == kind) return files;
  return {};
}

std::vector<DirectoryEntry> list_directory(const std::string& dir, const std::vector<std::string>& extensions) {
  std::error_code ec;
  fs::directory_iterator it(dir.empty() ? "." : dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) throw Error("cannot read folder " + dir + ": " + ec.message());
  std::vector<DirectoryEntry> dirs, files;
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string name = it->path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    std::error_code e2;
    if (it->is_directory(e2)) {
      dirs.push_back({name, true, 0});
    } else {
      const std::string ext = lower(it->path().extension().string());
      if (!extensions.empty() && std::find(extensions.begin(), extensions.end(), ext) == extensions.end()) continue;
      const auto size = it->file_size(e2);
      files.push_back({name, false, e2 ? 0 : static_cast<int64_t>(size)});
    }
  }
  auto by_name = [](const DirectoryEntry& a, const DirectoryEntry& b) { return a.name < b.name; };
  std::sort(dirs.begin(), dirs.end(), by_name);
  std::sort(files.begin(), files.end(), by_name);
  std::vector<DirectoryEntry> out;
  const fs::path abs = fs::absolute(dir.empty() ? "." : dir).lexically_normal();
  if (abs.has_relative_path() && abs != abs.root_path()) out.push_back({"..", true, 0});
  out.insert(out.end(), dirs.begin(), dirs.end());
  out.insert(out.end(), files.begin(), files.end());
  return out;
}

std::string one_line(const std::string& message) {
  const size_t end = message.find('\n');
  return end == std::string::npos ? message : message.substr(0, end);
}

}  // namespace lit::studio
