// lit-studio's window contents: drawn top to bottom once per frame from the plain state of
// app/state/studio_state.h, with the heavy work (loading, sampling) on the Generator's thread.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "app/state/generator.h"
#include "app/state/studio_state.h"

namespace lit::studio {

// What the command line asks of the window.
struct StartOptions {
  std::string model;                  // --model; empty: the built-in text model (with --class: the class one)
  std::string vae;                    // --vae
  std::string text_encoder;           // --text-encoder: T5 folder, for text-to-image models
  std::optional<std::string> prompt;  // --prompt (text-to-image)
  std::string negative_prompt;        // --negative-prompt
  std::string class_arg;              // --class: an id or name, resolved once the model is loaded
  bool unconditional = false;
  std::optional<std::string> sampler, device, dtype;
  std::optional<kernels::AttentionImpl> attention;
  std::optional<kernels::PrecisionPath> precision;
  std::optional<ClampX0> clamp_x0;
  std::optional<int64_t> steps, count;
  std::optional<double> cfg_scale;
  std::optional<uint64_t> seed;
  int64_t image_width = 0, image_height = 0;  // --image-width/--image-height (text-to-image; 0: training size)
  std::optional<GuidanceConvention> guidance_convention;
  bool autorun = false;  // generate once as soon as the model is loaded
};

// A file dialog drawn with ImGui: a folder listing, a name box, OK / Cancel.
struct FileBrowser {
  enum class Purpose { None, Model, Vae, TextEncoder, OpenImage, SaveImage };
  Purpose purpose = Purpose::None;
  bool want_open = false;    // open the popup on the next frame
  bool pick_folder = false;  // the answer is the current folder (VAE folders)
  std::string dir;
  std::string name;  // the file name box
  std::vector<std::string> extensions;
  std::vector<DirectoryEntry> listing;
  std::string listing_dir;  // the folder `listing` belongs to
  std::string error;

  void open(Purpose p, const std::string& start_path);
};

class StudioUI {
 public:
  StudioUI(Generator& generator, const StartOptions& start);
  ~StudioUI();

  // One frame: takes the worker's news, then draws every panel into the main viewport.
  void frame();
  // Paths dropped on the window (GLFW drop callback): PNGs are opened, checkpoints loaded.
  void drop(const std::vector<std::string>& paths);

  // --autorun: true once the scripted generation has ended (done, failed or cancelled).
  bool script_finished() const { return script_ == Script::Finished; }
  bool script_failed() const { return script_failed_; }
  const std::string& status() const { return status_; }

 private:
  enum class Script { Off, WaitLoad, WaitGenerate, Finished };

  void poll_generator();
  void set_status(const std::string& text, bool error);
  void start_generate();
  void start_load();
  void restore(const Settings& from, const std::vector<std::string>& notes);
  void open_image_file(const std::string& path);
  void remember(const std::string& kind, const std::string& path);

  void draw_menu();
  void draw_model_panel();
  void draw_text_size_and_convention(const ModelInfo& model);
  void draw_conditioning_panel();
  void draw_settings_panel();
  void draw_generate_panel();
  void draw_image_panel();
  void draw_gallery();
  void draw_file_browser();

  // Textures (OpenGL) of images, by history id; the preview has its own.
  unsigned texture_for(int64_t id, const at::Tensor& pixels);
  void prune_textures();
  void release_textures();

  Generator& gen_;
  Settings settings_;
  History history_;
  RecentFiles recent_;
  std::optional<ModelInfo> model_;
  Progress progress_;
  int64_t seen_job_ = 0;
  Outcome seen_outcome_ = Outcome::None;
  std::string status_;
  bool status_error_ = false;
  std::string class_filter_;
  bool scroll_to_class_ = true;
  bool cfg_chosen_ = false;    // --cfg-scale given: a text model keeps it instead of PixArt's 4.5
  std::string pending_class_;  // --class waiting for the model's names
  FileBrowser browser_;
  std::string save_dir_;

  Script script_ = Script::Off;
  bool script_failed_ = false;

  std::map<int64_t, unsigned> textures_;
  unsigned preview_texture_ = 0;
  int64_t preview_job_ = -1, preview_version_ = -1;
};

}  // namespace lit::studio
