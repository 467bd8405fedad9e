// lit-studio's state, without a window: what the user asks for (Settings, which becomes the pipeline's
// GenerationRequest), how settings come back from a PNG's "parameters" text, the session's images
// (History), recent files and directory listings for the file browser. The drawing code (app/studio_ui.cpp)
// reads and edits these plain structs once per frame; the tests use them without any display.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/format.h"
#include "kernels/execution.h"
#include "model/backbone/class_labels.h"
#include "pipeline/request.h"
#include "pipeline/session.h"
#include "weights/generation_params.h"

namespace lit::studio {

// ---------------------------------------------------------------------------------------------------------
// What to generate
// ---------------------------------------------------------------------------------------------------------
// How the images are conditioned. Class-conditional models take a class or nothing; text-to-image models
// (PixArt-Σ, LiT-T2I) take a prompt and a negative prompt (the panel shows only what the loaded model supports).
struct Conditioning {
  enum class Kind { Unconditional, Class, Prompt };
  Conditioning() = default;
  Conditioning(Kind k, int64_t id) : kind(k), class_id(id) {}

  Kind kind = Kind::Class;
  int64_t class_id = 0;
  std::string prompt, negative_prompt;  // Kind::Prompt

  bool operator==(const Conditioning& o) const {
    return kind == o.kind && class_id == o.class_id && prompt == o.prompt && negative_prompt == o.negative_prompt;
  }
};

struct Settings {
  std::string model_path;             // checkpoint; empty: the built-in model
  std::string vae_path;               // diffusers VAE folder; empty: a pixel-space model
  std::string text_encoder_path;      // T5 folder, for text-to-image models
  bool learned_null_caption = false;  // text-to-image: the model's y_embedding as the null caption (built-in: on)
  GuidanceConvention guidance_convention = GuidanceConvention::Official;  // text-to-image (pipeline/request.h)
  int64_t width = 0, height = 0;  // text-to-image, pixels; 0: the model's training resolution
  Conditioning conditioning;
  std::string sampler = "dpm++2m";  // "ddpm", "ddim", "dpm++2m"
  int64_t steps = 20;
  double eta = 0.0;  // DDIM only
  double cfg_scale = 4.0;
  bool cfg_all_channels = false;  // guide every channel instead of DiT's first three
  uint64_t seed = 0;
  bool random_seed = false;  // draw a new seed for every Generate
  int64_t batch_count = 1;   // images per Generate; image i uses seed + i, as `lit generate`
  std::string device = "cpu";
  std::string dtype = "fp32";  // "fp32", "bf16", "fp16"
  ClampX0 clamp_x0 = ClampX0::Auto;
  kernels::ExecutionOptions execution;  // attention implementation, precision path
  int64_t preview_every = 5;            // steps between previews of the predicted x_0 (0: none)

  bool operator==(const Settings& o) const;
  bool operator!=(const Settings& o) const { return !(*this == o); }
};

// The built-in models (model/backbone/builtin_model.h) into the settings; false (settings unchanged) when not
// installed. The text model: its checkpoint, its T5 folder, its learned null caption, no VAE, a prompt (the
// example prompt when there is none yet). The class model: its checkpoint, no VAE, a class.
bool use_builtin_text_model(Settings& settings);
bool use_builtin_class_model(Settings& settings);

// The choices the panel offers are the pipeline's: sampler_names() (sampler/sampler.h), dtype_names()
// (common/format.h), kernels::available_devices(), kernels::attention_impl_names().

// A seed for the dice button and for random-seed mode: uniformly random, below 2^32 so it is easy to type.
uint64_t random_seed();
// The seed of this Generate: settings.seed, or a new random one (written back) in random-seed mode.
uint64_t seed_for_run(Settings& settings);

// The pipeline's request for a Generate seeded `run_seed`: settings.batch_count images of the chosen class (or
// unconditional), or of the prompt.
GenerationRequest request_of(const Settings& settings, uint64_t run_seed);

// Throws lit::Error with one line naming the first setting no generation accepts (the request's checks, and
// the batch count and preview interval).
void validate_settings(const Settings& settings);

// What the loaded model offers: the pipeline's ModelInfo (pipeline/session.h). The class a conditioning stands
// for, or num_classes (the null class) for unconditional and for models without classes.
int64_t label_for(const ModelInfo& model, const Conditioning& conditioning);

// ---------------------------------------------------------------------------------------------------------
// Settings <-> the PNG "parameters" text: the pipeline's record (pipeline/parameters.h), as `lit generate` writes it
// ---------------------------------------------------------------------------------------------------------
// The parameters of image `index` of a Generate seeded `run_seed`.
GenerationParams image_params(const Settings& settings, const ModelInfo& model, uint64_t run_seed, int64_t index);

struct RestoredSettings {
  Settings settings;
  std::vector<std::string> notes;  // what could not be restored, or differs from the loaded model, one line each
};

// Settings that make the image again as image 0 of a Generate: `base` with every field the text holds (the
// image's own seed, fixed; a text-to-image record's prompt and negative prompt). `model` (may be null) names the
// classes and says whether they fit. Throws lit::Error when the text holds no generation parameters at all.
RestoredSettings settings_from_params(const GenerationParams& params, const Settings& base, const ModelInfo* model);

// The "parameters" text chunk of a PNG, or lit::Error naming the file when it has none.
GenerationParams read_png_params(const std::string& path);

// ---------------------------------------------------------------------------------------------------------
// The session's images
// ---------------------------------------------------------------------------------------------------------
struct HistoryEntry {
  int64_t id = 0;        // unique in the session (textures are keyed by it)
  at::Tensor pixels;     // uint8 (H, W, C), C = 1 or 3, CPU
  at::Tensor thumbnail;  // uint8 (h, w, C), at most kThumbnailSize on a side
  GenerationParams params;
  Settings settings;       // the settings that make this image again (seed = its own seed)
  std::string source;      // "generated", or the file it was opened from
  std::string saved_path;  // where Save wrote it, if it did
};

inline constexpr int64_t kThumbnailSize = 96;

// A smaller copy for the gallery (box-filtered when shrinking, untouched when already small).
at::Tensor make_thumbnail(const at::Tensor& pixels, int64_t max_side = kThumbnailSize);

class History {
 public:
  explicit History(size_t capacity = 500) : capacity_(capacity) {}

  // Adds an image (the thumbnail is made here), selects it, returns its id. The oldest go past `capacity`.
  int64_t add(HistoryEntry entry);
  const std::vector<HistoryEntry>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  size_t thumbnail_count() const;

  // Selects an entry by id and returns it (null when unknown).
  const HistoryEntry* select(int64_t id);
  const HistoryEntry* selected() const;
  const HistoryEntry* find(int64_t id) const;
  void set_saved_path(int64_t id, const std::string& path);
  void clear();

 private:
  size_t capacity_;
  std::vector<HistoryEntry> entries_;
  int64_t next_id_ = 1;
  int64_t selected_ = 0;
};

// Writes an entry's image as PNG with its parameters (atomic, weights/image_io.h). Throws lit::Error.
void save_entry(const HistoryEntry& entry, const std::string& path);
// A file name that does not exist yet in `dir`: "lit-studio-<seed>.png", "lit-studio-<seed>-2.png", ...
std::string suggest_save_path(const std::string& dir, const HistoryEntry& entry);

// Opens an image file for the gallery: its pixels, and its parameters when it is a PNG that carries them
// (`restored` then holds the settings; notes say what did not fit). Throws lit::Error.
HistoryEntry open_image(const std::string& path, const Settings& base, const ModelInfo* model,
                        std::vector<std::string>* notes);

// How large to draw a w x h image in a box: the largest whole multiple that fits (nearest-neighbour
// enlargement of tiny images), or shrunk to fit when the image is larger than the box.
struct DisplaySize {
  float width = 0, height = 0;
  float scale = 1;
};
DisplaySize fit_image(int64_t width, int64_t height, float box_width, float box_height);

// ---------------------------------------------------------------------------------------------------------
// Files: recent models / VAEs / images, and directory listings for the file browser
// ---------------------------------------------------------------------------------------------------------
class RecentFiles {
 public:
  // ~/.config/lit-studio/recent.json ($XDG_CONFIG_HOME/lit-studio/recent.json when set).
  static std::string default_path();

  explicit RecentFiles(std::string path, size_t per_kind = 10) : path_(std::move(path)), per_kind_(per_kind) {}

  // Reads the file; a missing file is an empty list, a corrupt one lit::Error (the lists stay empty).
  void load();
  // Writes the lists atomically, creating the folder. Throws lit::Error.
  void save() const;

  // Puts `file` first in `kind`'s list ("model", "vae", "text_encoder", "image", and "prompt": the recent
  // prompts), without duplicates.
  void add(const std::string& kind, const std::string& file);
  std::vector<std::string> list(const std::string& kind) const;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  size_t per_kind_;
  std::vector<std::pair<std::string, std::vector<std::string>>> lists_;
};

struct DirectoryEntry {
  std::string name;
  bool is_directory = false;
  int64_t size = 0;
};

// The folder's subfolders (with ".." first unless at the root) and the files whose extension is in
// `extensions` (lower case, with the dot; empty: every file), each sorted by name, hidden ones left out.
// Throws lit::Error when the folder cannot be read.
std::vector<DirectoryEntry> list_directory(const std::string& dir, const std::vector<std::string>& extensions);

// The first line of an exception's message (c10::Error's carry a C++ backtrace after it).
std::string one_line(const std::string& message);

}  // namespace lit::studio
