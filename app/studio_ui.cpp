#include "app/studio_ui.h"

#include <GL/gl.h>
#include <imgui.h>
#include <imgui_stdlib.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "common/error.h"
#include "common/format.h"
#include "kernels/execution.h"
#include "kernels/runtime/cuda_support.h"
#include "model/backbone/builtin_model.h"
#include "sampler/sampler.h"

namespace fs = std::filesystem;

namespace lit::studio {
namespace {

const std::vector<std::string> kModelExtensions = {".pt", ".pth", ".safetensors", ".bin", ".ckpt"};
const std::vector<std::string> kImageExtensions = {".png", ".jpg", ".jpeg", ".webp", ".bmp"};
constexpr float kPanelWidth = 380;
constexpr float kGalleryHeight = 132;
const ImVec4 kErrorColour(1.0f, 0.45f, 0.4f, 1.0f);
const ImVec4 kDimColour(0.65f, 0.67f, 0.72f, 1.0f);

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool has_extension(const std::string& path, const std::vector<std::string>& exts) {
  const std::string ext = lower(fs::path(path).extension().string());
  return std::find(exts.begin(), exts.end(), ext) != exts.end();
}

std::string with_commas(int64_t n) {
  std::string s = std::to_string(n);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string seconds_text(double s) {
  char buf[32];
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  else
    std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
  return buf;
}

// A combo over a list of names; true when the choice changed.
bool combo(const char* label, std::string& value, const std::vector<std::string>& names) {
  bool changed = false;
  if (ImGui::BeginCombo(label, value.c_str())) {
    for (const auto& n : names) {
      const bool selected = n == value;
      if (ImGui::Selectable(n.c_str(), selected)) {
        changed = n != value;
        value = n;
      }
      if (selected) ImGui::SetItemDefaultFocus();
    }
    ImGui::EndCombo();
  }
  return changed;
}

// (H, W, C) uint8 into a GL texture: gray is spread to RGB; nearest-neighbour when enlarged, so tiny images
// show their pixels.
void upload(unsigned texture, const at::Tensor& pixels) {
  at::Tensor rgb = pixels.size(2) == 1 ? pixels.expand({pixels.size(0), pixels.size(1), 3}) : pixels;
  rgb = rgb.contiguous();
  glBindTexture(GL_TEXTURE_2D, texture);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_LINEAR);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_S, GL_CLAMP_TO_EDGE);
  glTexParameteri(GL_TEXTURE_2D, GL_TEXTURE_WRAP_T, GL_CLAMP_TO_EDGE);
  glPixelStorei(GL_UNPACK_ALIGNMENT, 1);
  glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB, static_cast<GLsizei>(rgb.size(1)), static_cast<GLsizei>(rgb.size(0)), 0,
               GL_RGB, GL_UNSIGNED_BYTE, rgb.data_ptr());
}

ImTextureID as_id(unsigned texture) {
  return reinterpret_cast<ImTextureID>(static_cast<intptr_t>(texture));
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// File browser
// ---------------------------------------------------------------------------------------------------------
void FileBrowser::open(Purpose p, const std::string& start_path) {
  purpose = p;
  want_open = true;
  error.clear();
  listing_dir.clear();
  pick_folder = p == Purpose::Vae || p == Purpose::TextEncoder;
  extensions = p == Purpose::Model                              ? kModelExtensions
               : p == Purpose::Vae || p == Purpose::TextEncoder ? std::vector<std::string>{".safetensors", ".bin"}
               : p == Purpose::OpenImage                        ? kImageExtensions
                                                                : std::vector<std::string>{".png"};
  std::error_code ec;
  fs::path start = start_path.empty() ? fs::current_path(ec) : fs::path(start_path);
  if (fs::is_directory(start, ec)) {
    dir = start.string();
    name.clear();
  } else {
    dir = start.has_parent_path() ? start.parent_path().string() : fs::current_path(ec).string();
    name = start.filename().string();
  }
  if (!fs::is_directory(dir, ec)) dir = fs::current_path(ec).string();
  dir = fs::absolute(dir, ec).lexically_normal().string();
}

// ---------------------------------------------------------------------------------------------------------
// Start-up, news from the worker
// ---------------------------------------------------------------------------------------------------------
StudioUI::StudioUI(Generator& generator, const StartOptions& start)
    : gen_(generator), recent_(RecentFiles::default_path()) {
  try {
    recent_.load();
  } catch (const Error& e) {
    set_status(e.what(), true);
  }
  std::error_code ec;
  save_dir_ = fs::current_path(ec).string();
  settings_.model_path = start.model;
  if (settings_.model_path.empty()) {
    // The built-in text model with an example prompt, unless a class was asked for; the class model is one
    // button away (the Model panel's Built-in classes).
    const bool classes = !start.class_arg.empty() || start.unconditional;
    if (classes || !use_builtin_text_model(settings_)) use_builtin_class_model(settings_);
  }
  if (!start.vae.empty()) settings_.vae_path = start.vae;
  if (!start.text_encoder.empty()) settings_.text_encoder_path = start.text_encoder;
  if (start.prompt) {
    settings_.conditioning.kind = Conditioning::Kind::Prompt;
    settings_.conditioning.prompt = *start.prompt;
    settings_.conditioning.negative_prompt = start.negative_prompt;
  }
  settings_.width = start.image_width;
  settings_.height = start.image_height;
  if (start.guidance_convention) settings_.guidance_convention = *start.guidance_convention;
  cfg_chosen_ = start.cfg_scale.has_value();
  if (start.sampler) settings_.sampler = canonical_sampler_name(*start.sampler).value_or(*start.sampler);
  if (start.device) settings_.device = *start.device;
  if (start.dtype)
    settings_.dtype = dtype_from_name(*start.dtype) ? dtype_name(*dtype_from_name(*start.dtype)) : *start.dtype;
  if (start.attention) settings_.execution.attention = *start.attention;
  if (start.precision) settings_.execution.precision = *start.precision;
  if (start.clamp_x0) settings_.clamp_x0 = *start.clamp_x0;
  if (start.steps) settings_.steps = *start.steps;
  if (start.count) settings_.batch_count = *start.count;
  if (start.cfg_scale) settings_.cfg_scale = *start.cfg_scale;
  if (start.seed) settings_.seed = *start.seed;
  if (start.unconditional) settings_.conditioning.kind = Conditioning::Kind::Unconditional;
  pending_class_ = start.class_arg;
  if (start.autorun) script_ = Script::WaitLoad;

  if (settings_.model_path.empty()) {
    set_status("no built-in model found: choose a model (File > Open model...)", true);
    if (start.autorun) {
      script_ = Script::Finished;
      script_failed_ = true;
    }
  } else {
    start_load();
  }
}

StudioUI::~StudioUI() {
  release_textures();
}

void StudioUI::set_status(const std::string& text, bool error) {
  status_ = one_line(text);
  status_error_ = error;
}

void StudioUI::remember(const std::string& kind, const std::string& path) {
  if (path.empty()) return;
  std::error_code ec;
  recent_.add(kind, fs::absolute(path, ec).lexically_normal().string());
  try {
    recent_.save();
  } catch (const Error& e) {
    set_status(e.what(), true);
  }
}

void StudioUI::poll_generator() {
  progress_ = gen_.progress();
  for (GeneratedImage& img : gen_.take_images()) {
    HistoryEntry e;
    e.pixels = img.pixels;
    e.params = std::move(img.params);
    e.settings = img.settings;
    e.source = "generated";
    history_.add(std::move(e));
    prune_textures();
  }
  const std::optional<ModelInfo> info = gen_.model();
  if (info && (!model_ || model_->path != info->path || model_->vae_path != info->vae_path ||
               model_->text_encoder_path != info->text_encoder_path || model_->device != info->device ||
               model_->dtype != info->dtype)) {
    remember("model", info->path);
    remember("vae", info->vae_path);
    remember("text_encoder", info->text_encoder_path);
    if (info->class_conditional && settings_.conditioning.class_id >= info->num_classes)
      settings_.conditioning.class_id = 0;
    if (info->text_conditional) {
      // The learned null caption is the built-in text model's (trained with caption dropout to y_embedding); for
      // another model the user ticks it.
      if (!model_ || model_->path != info->path)
        settings_.learned_null_caption = info->has_learned_null_caption && is_builtin_text_model(info->path);
      // A prompt box instead of the class picker, and PixArt's guidance unless the user chose another.
      if (!model_ || !model_->text_conditional) {
        settings_.conditioning.kind = Conditioning::Kind::Prompt;
        if (!cfg_chosen_) settings_.cfg_scale = kTextCfgScale;
        settings_.cfg_all_channels = true;
      }
    } else {
      // Back from a text model (e.g. Built-in classes): DiT's guidance again unless the user chose another.
      if (model_ && model_->text_conditional) {
        if (!cfg_chosen_) settings_.cfg_scale = Settings{}.cfg_scale;
        settings_.cfg_all_channels = false;
      }
      if (settings_.conditioning.kind == Conditioning::Kind::Prompt)
        settings_.conditioning.kind =
            info->class_conditional ? Conditioning::Kind::Class : Conditioning::Kind::Unconditional;
      else if (!info->class_conditional)
        settings_.conditioning.kind = Conditioning::Kind::Unconditional;
    }
  }
  model_ = info;
  if (model_ && !pending_class_.empty()) {
    try {
      settings_.conditioning = {Conditioning::Kind::Class, parse_class(pending_class_, model_->classes)};
      scroll_to_class_ = true;
    } catch (const Error& e) {
      set_status(std::string("--class: ") + e.what(), true);
      if (script_ != Script::Off) script_failed_ = true;
    }
    pending_class_.clear();
  }

  // A job ended: say how, once.
  if (progress_.phase == Phase::Idle && (progress_.job_id != seen_job_ || progress_.outcome != seen_outcome_)) {
    seen_job_ = progress_.job_id;
    seen_outcome_ = progress_.outcome;
    if (progress_.outcome == Outcome::Failed)
      set_status(progress_.error, true);
    else if (progress_.outcome != Outcome::None)
      set_status(progress_.message, false);
    if (script_ == Script::WaitLoad) {
      if (progress_.outcome == Outcome::Done && !script_failed_) {
        script_ = Script::WaitGenerate;
        start_generate();
      } else {
        script_ = Script::Finished;
        script_failed_ = true;
      }
    } else if (script_ == Script::WaitGenerate && progress_.job_id == gen_.last_job_id()) {
      script_ = Script::Finished;
      script_failed_ = script_failed_ || progress_.outcome != Outcome::Done;
    }
  }
}

void StudioUI::start_load() {
  if (!gen_.load(settings_)) return;
  progress_ = gen_.progress();
  set_status("loading " + settings_.model_path, false);
}

void StudioUI::start_generate() {
  try {
    validate_settings(settings_);
  } catch (const Error& e) {
    set_status(e.what(), true);
    if (script_ == Script::WaitGenerate) {
      script_ = Script::Finished;
      script_failed_ = true;
    }
    return;
  }
  const uint64_t seed = seed_for_run(settings_);
  if (settings_.conditioning.kind == Conditioning::Kind::Prompt && !settings_.conditioning.prompt.empty()) {
    recent_.add("prompt", settings_.conditioning.prompt);  // recent prompts, in the recent-files file
    try {
      recent_.save();
    } catch (const Error&) {
    }
  }
  if (gen_.generate(settings_, seed)) {
    progress_ = gen_.progress();
    set_status("generating", false);
  }
}

void StudioUI::restore(const Settings& from, const std::vector<std::string>& notes) {
  // The model, VAE, device and precision stay what is loaded: restoring never starts a load by itself.
  Settings s = from;
  s.model_path = settings_.model_path;
  s.vae_path = settings_.vae_path;
  s.text_encoder_path = settings_.text_encoder_path;
  s.device = settings_.device;
  s.preview_every = settings_.preview_every;
  s.batch_count = settings_.batch_count;
  settings_ = s;
  scroll_to_class_ = true;
  if (notes.empty())
    set_status("settings restored (seed " + std::to_string(settings_.seed) + ")", false);
  else
    set_status("settings restored; " + notes.front() + (notes.size() > 1 ? " (and more)" : ""), false);
}

void StudioUI::open_image_file(const std::string& path) {
  try {
    std::vector<std::string> notes;
    HistoryEntry e = open_image(path, settings_, model_ ? &*model_ : nullptr, &notes);
    const Settings restored = e.settings;
    const bool has_params = !e.params.fields.empty();
    history_.add(std::move(e));
    prune_textures();
    remember("image", path);
    if (has_params)
      restore(restored, notes);
    else
      set_status(notes.empty() ? "opened " + path : notes.front(), false);
  } catch (const Error& e) {
    set_status(e.what(), true);
  }
}

void StudioUI::drop(const std::vector<std::string>& paths) {
  for (const std::string& p : paths) {
    if (has_extension(p, kImageExtensions)) {
      open_image_file(p);
    } else if (has_extension(p, kModelExtensions)) {
      if (gen_.busy()) {
        set_status("busy: drop the model again when the current job has ended", true);
        continue;
      }
      settings_.model_path = p;
      start_load();
    } else {
      set_status(p + ": not an image or a checkpoint", true);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
// The frame
// ---------------------------------------------------------------------------------------------------------
void StudioUI::frame() {
  poll_generator();

  const ImGuiViewport* vp = ImGui::GetMainViewport();
  ImGui::SetNextWindowPos(vp->WorkPos);
  ImGui::SetNextWindowSize(vp->WorkSize);
  const ImGuiWindowFlags flags = ImGuiWindowFlags_NoDecoration | ImGuiWindowFlags_NoMove |
                                 ImGuiWindowFlags_NoBringToFrontOnFocus | ImGuiWindowFlags_MenuBar |
                                 ImGuiWindowFlags_NoSavedSettings;
  ImGui::PushStyleVar(ImGuiStyleVar_WindowRounding, 0);
  ImGui::Begin("lit-studio", nullptr, flags);
  ImGui::PopStyleVar();
  draw_menu();

  ImGui::BeginChild("controls", ImVec2(kPanelWidth, 0), true);
  draw_model_panel();
  draw_conditioning_panel();
  draw_settings_panel();
  ImGui::EndChild();
  ImGui::SameLine();
  ImGui::BeginGroup();
  draw_generate_panel();
  ImGui::BeginChild("image", ImVec2(0, -kGalleryHeight), true);
  draw_image_panel();
  ImGui::EndChild();
  ImGui::BeginChild("gallery", ImVec2(0, 0), true, ImGuiWindowFlags_HorizontalScrollbar);
  draw_gallery();
  ImGui::EndChild();
  ImGui::EndGroup();

  draw_file_browser();
  ImGui::End();
}

void StudioUI::draw_menu() {
  if (!ImGui::BeginMenuBar()) return;
  if (ImGui::BeginMenu("File")) {
    const bool busy = gen_.busy();
    if (ImGui::MenuItem("Open model...", nullptr, false, !busy))
      browser_.open(FileBrowser::Purpose::Model, settings_.model_path);
    if (ImGui::MenuItem("Open VAE folder...", nullptr, false, !busy))
      browser_.open(FileBrowser::Purpose::Vae, settings_.vae_path);
    if (ImGui::MenuItem("Open text encoder folder...", nullptr, false, !busy))
      browser_.open(FileBrowser::Purpose::TextEncoder, settings_.text_encoder_path);
    if (ImGui::MenuItem("Open image...")) browser_.open(FileBrowser::Purpose::OpenImage, "");
    if (ImGui::MenuItem("Save image...", nullptr, false, history_.selected() != nullptr))
      browser_.open(FileBrowser::Purpose::SaveImage, suggest_save_path(save_dir_, *history_.selected()));
    ImGui::Separator();
    for (const char* kind : {"model", "vae", "text_encoder", "image"}) {
      const auto files = recent_.list(kind);
      const std::string k = kind;
      const std::string label = std::string("Recent ") + (k == "vae"            ? "VAEs"
                                                          : k == "text_encoder" ? "text encoders"
                                                                                : k + "s");
      if (ImGui::BeginMenu(label.c_str(), !files.empty())) {
        for (const auto& f : files) {
          if (!ImGui::MenuItem(f.c_str())) continue;
          if (std::string(kind) == "image") {
            open_image_file(f);
          } else if (!busy) {
            (k == "model" ? settings_.model_path : k == "vae" ? settings_.vae_path : settings_.text_encoder_path) = f;
            start_load();
          }
        }
        ImGui::EndMenu();
      }
    }
    ImGui::EndMenu();
  }
  ImGui::TextColored(kDimColour, "  lit.cpp %s  |  drop a PNG made by lit or lit-studio to restore its settings",
                     LIT_VERSION);
  ImGui::EndMenuBar();
}

void StudioUI::draw_model_panel() {
  if (!ImGui::CollapsingHeader("Model", ImGuiTreeNodeFlags_DefaultOpen)) return;
  const bool busy = gen_.busy();
  ImGui::BeginDisabled(busy);
  ImGui::SetNextItemWidth(-70);
  ImGui::InputTextWithHint("##model", "checkpoint (.pt, .safetensors)", &settings_.model_path);
  ImGui::SameLine();
  if (ImGui::Button("Browse##model")) browser_.open(FileBrowser::Purpose::Model, settings_.model_path);
  ImGui::SetNextItemWidth(-70);
  ImGui::InputTextWithHint("##vae", "VAE folder (latent models only)", &settings_.vae_path);
  ImGui::SameLine();
  if (ImGui::Button("Browse##vae")) browser_.open(FileBrowser::Purpose::Vae, settings_.vae_path);
  ImGui::SetNextItemWidth(-70);
  ImGui::InputTextWithHint("##t5", "T5 text encoder folder (text-to-image models)", &settings_.text_encoder_path);
  ImGui::SameLine();
  if (ImGui::Button("Browse##t5")) browser_.open(FileBrowser::Purpose::TextEncoder, settings_.text_encoder_path);
  if (ImGui::Button("Load")) start_load();
  ImGui::SameLine();
  // One click to a built-in model: `use` points the settings at its files (false: not installed).
  auto builtin_button = [this](const char* label, bool (*use)(Settings&), const char* name, const char* tooltip) {
    if (ImGui::Button(label)) {
      if (use(settings_))
        start_load();
      else
        set_status(std::string("the built-in ") + name + " model is not installed", true);
    }
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s", tooltip);
  };
  builtin_button("Built-in text", use_builtin_text_model, "text",
                 "the built-in LiT-T2I: garments on a black canvas, from a prompt");
  ImGui::SameLine();
  builtin_button("Built-in classes", use_builtin_class_model, "class",
                 "the built-in Fashion-MNIST LiT: one of ten garment classes");
  ImGui::EndDisabled();

  if (!model_) {
    ImGui::TextColored(kDimColour, "no model loaded");
    return;
  }
  const ModelInfo& m = *model_;
  ImGui::TextWrapped("%s", m.architecture.c_str());
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("%s\nconfig: %s", m.summary.c_str(), m.config_source.c_str());
  ImGui::TextColored(kDimColour, "%s parameters, %s images, %s %s", with_commas(m.parameters).c_str(),
                     (std::to_string(m.image_size) + "x" + std::to_string(m.image_size)).c_str(), m.device.c_str(),
                     m.dtype.c_str());
  if (m.text_conditional)
    ImGui::TextColored(kDimColour, "text-to-image; T5: %s",
                       m.text_encoder_path.empty() ? "none (choose its folder)" : m.text_encoder_summary.c_str());
  else
    ImGui::TextColored(kDimColour, "%lld classes (%s)%s", static_cast<long long>(m.num_classes),
                       m.classes.source.c_str(), m.has_null_class ? " + unconditional" : "");
  ImGui::TextColored(kDimColour, "%s", m.pixel_model() ? "pixel space, no VAE" : ("VAE: " + m.vae_summary).c_str());
  ImGui::TextColored(kDimColour, "%s", kernels::describe(m.execution).c_str());
}

// A text-to-image model's image size (multiples of its patch x VAE factor; 0 x 0 = its training resolution)
// and the guidance convention of T5's null caption (lit generate --width, --height, --guidance-convention).
void StudioUI::draw_text_size_and_convention(const ModelInfo& m) {
  const int step = static_cast<int>(std::max<int64_t>(1, m.size_multiple));
  int size[2] = {static_cast<int>(settings_.width), static_cast<int>(settings_.height)};
  ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * 0.5f);
  if (ImGui::InputInt2("size", size)) {
    for (int& v : size) v = std::max(0, v / step * step);  // whole multiples; 0 keeps the training size
    settings_.width = size[0];
    settings_.height = size[1];
  }
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("width x height in pixels, multiples of %d; 0 x 0: the model's training size (%lld x %lld)", step,
                      static_cast<long long>(m.image_size), static_cast<long long>(m.image_size));
  ImGui::SameLine();
  if (ImGui::SmallButton("model's size")) settings_.width = settings_.height = 0;
  int convention = settings_.guidance_convention == GuidanceConvention::Diffusers ? 1 : 0;
  ImGui::BeginDisabled(settings_.learned_null_caption);
  ImGui::SetNextItemWidth(ImGui::GetContentRegionAvail().x * 0.6f);
  if (ImGui::Combo("guidance convention", &convention, "official\0diffusers\0"))
    settings_.guidance_convention = convention == 1 ? GuidanceConvention::Diffusers : GuidanceConvention::Official;
  ImGui::EndDisabled();
  if (ImGui::IsItemHovered(ImGuiHoveredFlags_AllowWhenDisabled))
    ImGui::SetTooltip(
        "T5's null caption: official (PixArt's scripts) with the prompt's mask, diffusers with its own;\n"
        "the learned null caption replaces it");
}

// The conditioning the loaded model takes. Class-conditional models: a class or none. Text-to-image models:
// a prompt and a negative prompt, with the recent prompts to pick from.
void StudioUI::draw_conditioning_panel() {
  if (!ImGui::CollapsingHeader("Conditioning", ImGuiTreeNodeFlags_DefaultOpen)) return;
  if (model_ && model_->text_conditional) {
    Conditioning& c = settings_.conditioning;
    c.kind = Conditioning::Kind::Prompt;
    ImGui::TextUnformatted("prompt");
    ImGui::InputTextMultiline("##prompt", &c.prompt, ImVec2(-1, 3 * ImGui::GetTextLineHeightWithSpacing()));
    ImGui::TextUnformatted("negative prompt");
    ImGui::InputTextMultiline("##negative", &c.negative_prompt, ImVec2(-1, 2 * ImGui::GetTextLineHeightWithSpacing()));
    if (!model_->has_learned_null_caption) settings_.learned_null_caption = false;
    ImGui::BeginDisabled(!model_->has_learned_null_caption);
    ImGui::Checkbox("learned null caption", &settings_.learned_null_caption);
    ImGui::EndDisabled();
    if (ImGui::IsItemHovered(ImGuiHoveredFlags_AllowWhenDisabled))
      ImGui::SetTooltip(
          "guidance's unconditional half: on, the model's learned y_embedding (models trained with caption\n"
          "dropout, as the built-in one); off, T5 of the negative prompt");
    draw_text_size_and_convention(*model_);
    const auto recent = recent_.list("prompt");
    ImGui::SetNextItemWidth(-1);
    if (ImGui::BeginCombo("##recent_prompts", recent.empty() ? "no recent prompts" : "recent prompts")) {
      for (const auto& p : recent)
        if (ImGui::Selectable(p.c_str(), p == c.prompt)) c.prompt = p;
      ImGui::EndCombo();
    }
    return;
  }
  if (!model_ || !model_->class_conditional) {
    ImGui::TextColored(kDimColour, model_ ? "unconditional model" : "load a model to choose a class");
    return;
  }
  const ModelInfo& m = *model_;
  Conditioning& c = settings_.conditioning;
  int kind = c.kind == Conditioning::Kind::Class ? 0 : 1;
  ImGui::RadioButton("class", &kind, 0);
  ImGui::SameLine();
  ImGui::BeginDisabled(!m.has_null_class);
  ImGui::RadioButton("unconditional", &kind, 1);
  ImGui::EndDisabled();
  c.kind = kind == 0 ? Conditioning::Kind::Class : Conditioning::Kind::Unconditional;
  ImGui::SameLine();
  if (ImGui::Button("Random class")) {
    c.kind = Conditioning::Kind::Class;
    c.class_id = static_cast<int64_t>(random_seed() % static_cast<uint64_t>(m.num_classes));
    scroll_to_class_ = true;
  }
  if (c.kind != Conditioning::Kind::Class) return;

  ImGui::SetNextItemWidth(-1);
  ImGui::InputTextWithHint("##classfilter", "search classes by name or id", &class_filter_);
  const std::string filter = lower(class_filter_);
  std::vector<int64_t> shown;
  for (int64_t i = 0; i < m.num_classes; ++i) {
    const std::string& name = m.classes.names[static_cast<size_t>(i)];
    if (filter.empty() || lower(name).find(filter) != std::string::npos || std::to_string(i).rfind(filter, 0) == 0)
      shown.push_back(i);
  }
  const float rows = static_cast<float>(std::min<size_t>(std::max<size_t>(shown.size(), 1), 7));
  if (ImGui::BeginListBox("##classes", ImVec2(-1, rows * ImGui::GetTextLineHeightWithSpacing() + 6))) {
    if (scroll_to_class_) {  // chosen elsewhere (restored, random, --class): bring it into view
      const auto row = std::find(shown.begin(), shown.end(), c.class_id) - shown.begin();
      if (row < static_cast<std::ptrdiff_t>(shown.size()))
        ImGui::SetScrollY(std::max(0.0f, (static_cast<float>(row) - 2) * ImGui::GetTextLineHeightWithSpacing()));
      scroll_to_class_ = false;
    }
    ImGuiListClipper clipper;
    clipper.Begin(static_cast<int>(shown.size()));
    while (clipper.Step()) {
      for (int r = clipper.DisplayStart; r < clipper.DisplayEnd; ++r) {
        const int64_t id = shown[static_cast<size_t>(r)];
        const std::string label = std::to_string(id) + "  " + m.classes.names[static_cast<size_t>(id)];
        if (ImGui::Selectable(label.c_str(), id == c.class_id)) c.class_id = id;
      }
    }
    ImGui::EndListBox();
  }
  if (c.class_id >= 0 && c.class_id < m.num_classes)
    ImGui::Text("class: %s", describe_class(c.class_id, m.classes).c_str());
}

void StudioUI::draw_settings_panel() {
  if (!ImGui::CollapsingHeader("Settings", ImGuiTreeNodeFlags_DefaultOpen)) return;
  Settings& s = settings_;
  ImGui::PushItemWidth(170);
  combo("sampler", s.sampler, sampler_names());
  int steps = static_cast<int>(s.steps);
  if (ImGui::InputInt("steps", &steps)) s.steps = std::clamp(steps, 1, 1000);
  if (s.sampler == "ddim") {
    float eta = static_cast<float>(s.eta);
    if (ImGui::SliderFloat("eta", &eta, 0, 1, "%.2f")) s.eta = eta;
  }
  float cfg = static_cast<float>(s.cfg_scale);
  if (ImGui::SliderFloat("guidance scale", &cfg, 0, 15, "%.2f")) s.cfg_scale = std::max(0.0f, cfg);
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("1 = no guidance; ctrl+click to type a value");
  ImGui::Checkbox("guide all channels", &s.cfg_all_channels);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("off: DiT's guidance of the first 3 channels (its published samples)\non: all channels");
  std::string clamp = clamp_x0_name(s.clamp_x0);
  if (combo("clamp x0", clamp, {"auto", "on", "off"})) s.clamp_x0 = parse_clamp_x0(clamp);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip(
        "clamp each predicted image to [-1, 1] while sampling\nauto: on for pixel-space models, off for latents");
  ImGui::BeginDisabled(s.random_seed);
  ImGui::InputScalar("seed", ImGuiDataType_U64, &s.seed);
  ImGui::EndDisabled();
  ImGui::SameLine();
  if (ImGui::Button("Dice")) {
    s.seed = random_seed();
    s.random_seed = false;
  }
  ImGui::SameLine();
  ImGui::Checkbox("random", &s.random_seed);
  int count = static_cast<int>(s.batch_count);
  if (ImGui::InputInt("batch count", &count)) s.batch_count = std::clamp(count, 1, 1000);
  const bool busy = gen_.busy();
  ImGui::BeginDisabled(busy);
  combo("device", s.device, kernels::available_devices());
  combo("precision", s.dtype, dtype_names());
  std::string attention = kernels::attention_impl_name(s.execution.attention);
  if (combo("attention", attention, kernels::attention_impl_names()))
    s.execution.attention = kernels::parse_attention_impl(attention);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip(
        "linear attention: auto (fused CUDA kernels for bf16/fp16, composed on the CPU),\n"
        "composed (a few matrix products per head), reference (ATen)");
  std::string path = kernels::precision_path_name(s.execution.precision);
  if (combo("kernels", path, kernels::precision_path_names()))
    s.execution.precision = kernels::parse_precision_path(path);
  if (ImGui::IsItemHovered())
    ImGui::SetTooltip("bf16/fp16 on CUDA: fused inference kernels, or plain ATen operators as in training");
  ImGui::EndDisabled();
  int every = static_cast<int>(s.preview_every);
  if (ImGui::InputInt("preview every", &every)) s.preview_every = std::clamp(every, 0, 1000);
  if (ImGui::IsItemHovered()) ImGui::SetTooltip("steps between previews of the predicted image (0: none)");
  ImGui::PopItemWidth();
}

void StudioUI::draw_generate_panel() {
  const bool busy = gen_.busy();
  const Progress& p = progress_;
  if (!busy) {
    if (ImGui::Button("Generate", ImVec2(140, 0))) start_generate();
  } else {
    if (ImGui::Button("Cancel", ImVec2(140, 0))) gen_.cancel();
  }
  ImGui::SameLine();
  float fraction = 0;
  std::string overlay;
  if (busy && p.phase == Phase::Loading) {
    overlay = "loading...";
  } else if (busy || p.outcome == Outcome::Done) {
    const double per_image = p.steps > 0 ? static_cast<double>(p.step) / static_cast<double>(p.steps) : 0;
    fraction = p.images > 0 ? static_cast<float>((static_cast<double>(p.image) + (busy ? per_image : 0)) /
                                                 static_cast<double>(p.images))
                            : 0;
    if (!busy && p.outcome == Outcome::Done) fraction = 1;
    char buf[160];
    std::snprintf(buf, sizeof buf, "step %lld/%lld  image %lld/%lld  %.2f it/s  ETA %s", static_cast<long long>(p.step),
                  static_cast<long long>(p.steps),
                  static_cast<long long>(std::min(p.image + (busy ? 1 : 0), std::max<int64_t>(p.images, 1))),
                  static_cast<long long>(p.images), p.its_per_s, seconds_text(p.eta_s).c_str());
    overlay = buf;
  }
  ImGui::ProgressBar(fraction, ImVec2(-1, 0), overlay.c_str());
  if (status_error_)
    ImGui::TextColored(kErrorColour, "error: %s", status_.c_str());
  else
    ImGui::TextColored(kDimColour, "%s", busy ? p.message.c_str() : status_.c_str());
}

void StudioUI::draw_image_panel() {
  const bool busy = gen_.busy();
  const HistoryEntry* entry = history_.selected();
  const bool preview = busy && progress_.phase != Phase::Loading && progress_.preview.defined();
  at::Tensor pixels;
  unsigned texture = 0;
  std::string caption;
  if (preview) {
    if (preview_texture_ == 0) glGenTextures(1, &preview_texture_);
    if (progress_.job_id != preview_job_ || progress_.preview_version != preview_version_) {
      upload(preview_texture_, progress_.preview);
      preview_job_ = progress_.job_id;
      preview_version_ = progress_.preview_version;
    }
    pixels = progress_.preview;
    texture = preview_texture_;
    caption = "preview: the predicted image at step " + std::to_string(progress_.step) + " of " +
              std::to_string(progress_.steps);
  } else if (entry) {
    pixels = entry->pixels;
    texture = texture_for(2 * entry->id, entry->pixels);
    if (ImGui::Button("Save")) {
      const std::string path = suggest_save_path(save_dir_, *entry);
      try {
        save_entry(*entry, path);
        history_.set_saved_path(entry->id, path);
        set_status("saved " + path, false);
      } catch (const Error& e) {
        set_status(e.what(), true);
      }
    }
    if (ImGui::IsItemHovered()) ImGui::SetTooltip("PNG with its parameters into %s", save_dir_.c_str());
    ImGui::SameLine();
    if (ImGui::Button("Save as..."))
      browser_.open(FileBrowser::Purpose::SaveImage, suggest_save_path(save_dir_, *entry));
    ImGui::SameLine();
    if (ImGui::Button("Use these settings")) restore(entry->settings, {});
    ImGui::SameLine();
    ImGui::TextColored(kDimColour, "%lldx%lld  %s", static_cast<long long>(pixels.size(1)),
                       static_cast<long long>(pixels.size(0)),
                       entry->saved_path.empty() ? entry->source.c_str() : ("saved: " + entry->saved_path).c_str());
    caption = entry->params.fields.empty() ? "(no generation parameters)" : format_generation_params(entry->params);
  } else {
    ImGui::TextColored(kDimColour, "Generate an image, or open / drop a PNG made by lit or lit-studio.");
    return;
  }
  const float caption_height = 3 * ImGui::GetTextLineHeightWithSpacing();
  const ImVec2 avail = ImGui::GetContentRegionAvail();
  const DisplaySize d = fit_image(pixels.size(1), pixels.size(0), avail.x, std::max(avail.y - caption_height, 16.0f));
  ImGui::SetCursorPosX(ImGui::GetCursorPosX() + std::max(0.0f, (avail.x - d.width) / 2));
  ImGui::Image(as_id(texture), ImVec2(d.width, d.height));
  ImGui::PushTextWrapPos(0);
  ImGui::TextColored(kDimColour, "%s", caption.c_str());
  ImGui::PopTextWrapPos();
}

void StudioUI::draw_gallery() {
  if (history_.empty()) {
    ImGui::TextColored(kDimColour, "this session's images appear here; click one to see it and restore its settings");
    return;
  }
  const float side = static_cast<float>(kThumbnailSize);
  const HistoryEntry* selected = history_.selected();
  const int64_t selected_id = selected ? selected->id : 0;
  int64_t clicked = 0;
  const auto& entries = history_.entries();
  for (auto it = entries.rbegin(); it != entries.rend(); ++it) {  // newest first
    const HistoryEntry& e = *it;
    const DisplaySize d = fit_image(e.thumbnail.size(1), e.thumbnail.size(0), side, side);
    ImGui::PushID(static_cast<int>(e.id));
    const bool is_selected = e.id == selected_id;
    if (is_selected) ImGui::PushStyleColor(ImGuiCol_Button, ImGui::GetStyleColorVec4(ImGuiCol_ButtonActive));
    if (ImGui::ImageButton(as_id(texture_for(2 * e.id + 1, e.thumbnail)), ImVec2(d.width, d.height))) clicked = e.id;
    if (is_selected) ImGui::PopStyleColor();
    if (ImGui::IsItemHovered())
      ImGui::SetTooltip("%s\nseed %s", e.params.prompt.empty() ? e.source.c_str() : e.params.prompt.c_str(),
                        e.params.get("Seed").value_or("?").c_str());
    ImGui::PopID();
    ImGui::SameLine();
  }
  if (clicked) {
    if (const HistoryEntry* e = history_.select(clicked)) restore(e->settings, {});
  }
}

void StudioUI::draw_file_browser() {
  FileBrowser& b = browser_;
  if (b.want_open) {
    ImGui::OpenPopup("file_browser");
    b.want_open = false;
  }
  ImGui::SetNextWindowSize(ImVec2(680, 480), ImGuiCond_Appearing);
  const char* titles[] = {"", "Open a model checkpoint", "Choose a VAE folder", "Open an image",
                          "Save the image as PNG"};
  const std::string title = std::string(titles[static_cast<int>(b.purpose)]) + "###file_browser";
  if (!ImGui::BeginPopupModal(title.c_str())) return;
  ImGui::PushID("file_browser");
  auto enter = [&](const std::string& dir) {
    std::error_code ec;
    b.dir = fs::absolute(dir, ec).lexically_normal().string();
    if (b.dir.size() > 1 && b.dir.back() == '/') b.dir.pop_back();
    b.listing_dir.clear();
  };
  if (ImGui::Button("Up")) enter(fs::path(b.dir).parent_path().string());
  ImGui::SameLine();
  ImGui::SetNextItemWidth(-1);
  std::string typed = b.dir;
  if (ImGui::InputText("##dir", &typed, ImGuiInputTextFlags_EnterReturnsTrue)) enter(typed);
  if (b.listing_dir != b.dir) {
    b.listing_dir = b.dir;
    b.error.clear();
    try {
      b.listing = list_directory(b.dir, b.extensions);
    } catch (const Error& e) {
      b.listing.clear();
      b.error = e.what();
    }
  }
  bool accept = false;
  ImGui::BeginChild("listing", ImVec2(0, -2.5f * ImGui::GetFrameHeightWithSpacing()), true);
  if (!b.error.empty()) ImGui::TextColored(kErrorColour, "%s", b.error.c_str());
  std::string go_into;
  for (const DirectoryEntry& e : b.listing) {
    const std::string label = e.is_directory ? "[" + e.name + "]" : e.name;
    if (ImGui::Selectable(label.c_str(), !e.is_directory && e.name == b.name, ImGuiSelectableFlags_AllowDoubleClick)) {
      if (e.is_directory) {
        go_into = e.name;
      } else {
        b.name = e.name;
        if (ImGui::IsMouseDoubleClicked(0)) accept = true;
      }
    }
    if (!e.is_directory) {
      ImGui::SameLine(ImGui::GetWindowWidth() - 110);
      ImGui::TextColored(kDimColour, "%8.1f MB", static_cast<double>(e.size) / 1e6);
    }
  }
  ImGui::EndChild();
  if (!go_into.empty()) enter((fs::path(b.dir) / go_into).string());
  ImGui::SetNextItemWidth(-1);
  if (ImGui::InputTextWithHint("##name", b.pick_folder ? "(this folder)" : "file name", &b.name,
                               ImGuiInputTextFlags_EnterReturnsTrue))
    accept = true;
  const char* ok = b.purpose == FileBrowser::Purpose::SaveImage ? "Save"
                   : b.pick_folder && b.name.empty()            ? "Use this folder"
                                                                : "Open";
  if (ImGui::Button(ok, ImVec2(140, 0))) accept = true;
  ImGui::SameLine();
  const bool cancel =
      ImGui::Button("Cancel", ImVec2(100, 0)) || ImGui::IsKeyPressed(ImGui::GetKeyIndex(ImGuiKey_Escape));
  if (accept && (b.name.empty() && !b.pick_folder)) accept = false;
  if (accept) {
    const std::string path = b.name.empty() ? b.dir : (fs::path(b.dir) / b.name).string();
    switch (b.purpose) {
      case FileBrowser::Purpose::Model:
        settings_.model_path = path;
        start_load();
        break;
      case FileBrowser::Purpose::Vae:
        settings_.vae_path = path;
        start_load();
        break;
      case FileBrowser::Purpose::TextEncoder:
        settings_.text_encoder_path = path;
        start_load();
        break;
      case FileBrowser::Purpose::OpenImage:
        open_image_file(path);
        break;
      case FileBrowser::Purpose::SaveImage:
        if (const HistoryEntry* e = history_.selected()) {
          try {
            save_entry(*e, path);
            history_.set_saved_path(e->id, path);
            save_dir_ = b.dir;
            set_status("saved " + path, false);
          } catch (const Error& err) {
            set_status(err.what(), true);
          }
        }
        break;
      case FileBrowser::Purpose::None:
        break;
    }
  }
  if (accept || cancel) {
    b.purpose = FileBrowser::Purpose::None;
    ImGui::CloseCurrentPopup();
  }
  ImGui::PopID();
  ImGui::EndPopup();
}

// ---------------------------------------------------------------------------------------------------------
// Textures
// ---------------------------------------------------------------------------------------------------------
unsigned StudioUI::texture_for(int64_t key, const at::Tensor& pixels) {
  auto it = textures_.find(key);
  if (it != textures_.end()) return it->second;
  GLuint texture = 0;
  glGenTextures(1, &texture);
  upload(texture, pixels);
  textures_[key] = texture;
  return texture;
}

// Images that left the history (past its capacity) give their textures back.
void StudioUI::prune_textures() {
  for (auto it = textures_.begin(); it != textures_.end();) {
    if (history_.find(it->first / 2)) {
      ++it;
      continue;
    }
    const GLuint t = it->second;
    glDeleteTextures(1, &t);
    it = textures_.erase(it);
  }
}

void StudioUI::release_textures() {
  for (auto& [key, texture] : textures_) {
    const GLuint t = texture;
    glDeleteTextures(1, &t);
  }
  textures_.clear();
  if (preview_texture_) {
    const GLuint t = preview_texture_;
    glDeleteTextures(1, &t);
    preview_texture_ = 0;
  }
}

}  // namespace lit::studio
